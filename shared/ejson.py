"""EJSON (npm ``ejson``, Primus' ``EJSON`` parser): JSON plus a few typed values.

* ``bytes`` <-> ``{"$binary": "<base64>"}`` (HTTP bodies travel this way)
* ``datetime`` <-> ``{"$date": <epoch ms>}``
* ``inf``/``-inf``/``nan`` <-> ``{"$InfNaN": 1 | -1 | 0}``
* a user object whose keys could be mistaken for the above is wrapped in ``{"$escape": {...}}``
* :data:`UNDEFINED` values are dropped from objects (JavaScript ``undefined``) and become
  ``null`` in arrays, as ``JSON.stringify`` does.

Custom types (``$type``/``$value``) are not produced by snyk-broker; they decode to plain dicts.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any, Final

from shared.protocol_error import ProtocolError


class _Undefined:
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()

MAX_DEPTH = 200
_PLAIN = frozenset({str, int, bool})


def to_json_value(obj: Any, _depth: int = 0) -> Any:
    """Turn Python values into plain JSON values with EJSON markers."""
    if _depth > MAX_DEPTH:
        raise ProtocolError("EJSON value nested too deeply")
    kind = type(obj)
    if kind in _PLAIN or obj is None:
        return obj
    if kind is dict:
        out = {}
        escape = False
        for key, value in obj.items():
            if type(key) is not str and not isinstance(key, str):
                raise ProtocolError(f"EJSON object keys must be strings, not {type(key).__name__}")
            if key[:1] == "$":
                escape = True
            # plain leaves inline: request headers are most of what goes over the socket
            if type(value) in _PLAIN or value is None:
                out[key] = value
            elif value is not UNDEFINED:
                out[key] = to_json_value(value, _depth + 1)
        return {"$escape": out} if escape else out
    if isinstance(obj, bool | str | int):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return {"$InfNaN": 0}
        if math.isinf(obj):
            return {"$InfNaN": 1 if obj > 0 else -1}
        return obj
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"$binary": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, datetime):
        when = obj if obj.tzinfo else obj.replace(tzinfo=UTC)
        return {"$date": round(when.timestamp() * 1000)}
    if isinstance(obj, dict):
        return to_json_value(dict(obj), _depth)
    if isinstance(obj, list | tuple):
        return [None if v is UNDEFINED else to_json_value(v, _depth + 1) for v in obj]
    raise ProtocolError(f"EJSON cannot encode a value of type {type(obj).__name__}")


def from_json_value(obj: Any, _depth: int = 0) -> Any:
    """Turn a parsed JSON value with EJSON markers into Python values."""
    if _depth > MAX_DEPTH:
        raise ProtocolError("EJSON value nested too deeply")
    if isinstance(obj, list):
        return [from_json_value(v, _depth + 1) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if key == "$binary":
            if not isinstance(value, str):
                raise ProtocolError("EJSON $binary value is not a base64 string")
            try:
                return base64.b64decode(value.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError) as exc:
                raise ProtocolError(f"EJSON $binary is not valid base64: {exc}") from None
        if key == "$date":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ProtocolError("EJSON $date value is not a number of milliseconds")
            try:
                return datetime.fromtimestamp(value / 1000, tz=UTC)
            except (OverflowError, OSError, ValueError):
                raise ProtocolError(f"EJSON $date value {value!r} is out of range") from None
        if key == "$InfNaN":
            if value not in (1, -1, 0) or isinstance(value, bool):
                raise ProtocolError("EJSON $InfNaN value must be 1, -1 or 0")
            return math.nan if value == 0 else math.inf * value
        if key == "$escape":
            if not isinstance(value, dict):
                raise ProtocolError("EJSON $escape value is not an object")
            return {k: from_json_value(v, _depth + 1) for k, v in value.items()}
    return {k: from_json_value(v, _depth + 1) for k, v in obj.items()}


def dumps(obj: Any) -> str:
    """EJSON text of ``obj`` (compact, like ``EJSON.stringify``)."""
    return json.dumps(
        to_json_value(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def loads(text: str | bytes) -> Any:
    """Parse EJSON text; ProtocolError on bad JSON or a malformed marker."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from None
    return from_json_value(parsed)
