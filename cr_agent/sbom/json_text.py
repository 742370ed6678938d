"""SBOM documents as JSON text, indented by two spaces.

The text is exactly what ``json.dumps(document, indent=2, ensure_ascii=False)`` writes. With
``indent`` set the standard library leaves its C encoder for a generic pure-Python generator
chain (~3.3 ms for a 150-package CycloneDX document here); the writer below knows that SBOM
documents hold only dicts with string keys, lists, strings, ints, finite floats, booleans and
None, escapes strings with the C escaper json itself uses, and is about 2.5 times faster.
Anything else goes to ``json.dumps`` itself. (orjson is faster still, but its import alone
costs a one-shot process more than it saves: it loads ``uuid`` and ``datetime``.)
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring  # the C escaper json uses
from typing import Any


class _Unusual(Exception):
    """A value this writer does not produce itself; json.dumps takes the whole document."""


def _write(value: Any, out: list[str], newline: str) -> None:
    kind = type(value)
    if kind is str:
        out.append(encode_basestring(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual  # json converts other keys to text in its own way
            out.append(separator + encode_basestring(key) + ": ")
            separator = "," + inner
            _write(item, out, inner)
        out.append(newline + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            out.append(separator)
            separator = "," + inner
            _write(item, out, inner)
        out.append(newline + "]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float and math.isfinite(value):
        out.append(float.__repr__(value))
    else:
        raise _Unusual


def indented_json(document: Any) -> str:
    out: list[str] = []
    try:
        _write(document, out, "\n")
    except _Unusual:
        return json.dumps(document, indent=2, ensure_ascii=False)
    return "".join(out)
