"""Request-line hygiene for requests the server asks the client to make: refuse, never repair.

The accept rules decide *which* paths may cross; this module decides whether a request line is
one a downstream could read differently from the matcher. Each check names what it refused, so
the 400 answer and the log line say why. Pure functions, no I/O.

Refused:

* control characters (CR, LF, TAB, NUL, any C0 or DEL) in the method or URL, raw or
  percent-encoded (header injection and request splitting on the way to the agent);
* ``;`` path parameters on dot segments (``..;``, ``.;``, ``%2e%2e;``, ``%2e%2e%3b``): servlet
  containers strip the parameter and then walk the dot segment;
* Unicode look-alikes of ``.``, ``/`` and ``\\``: anything that NFKC normalisation turns into
  one of them (full-width U+FF0E and U+FF0F, U+2024 one dot leader, U+FE52 small full stop)
  plus the look-alikes NFKC keeps (U+2215 division slash, U+2044 fraction slash, U+29F8 big
  solidus, U+3002 ideographic full stop), raw or percent-encoded as UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: printable ASCII without '%' and ';': nothing below can object (the common case, one match)
_PLAIN = re.compile(r"[!-$&-:<-~]*")
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)
#: Slash and dot look-alikes that NFKC leaves alone.
_CONFUSABLES = frozenset("\u2215\u2044\u29f8\u29f9\u2216\u3002\uff61\u2024\u2025\u2026\ufe52")
_STRUCTURAL = frozenset("./\\")


def request_line_problem(method: str, url: str) -> str | None:
    """Why this request line is refused, or None when it is clean."""
    if _PLAIN.fullmatch(url) and _PLAIN.fullmatch(method):
        return None
    for what, text in (("method", method), ("URL", url)):
        found = _CONTROL.search(text)
        if found:
            return f"control character {found.group()!r} in the request {what}"
    path, _, query = url.partition("?")
    found = _ENCODED_CONTROL.search(url)
    if found:
        return f"percent-encoded control character {found.group()} in the request URL"
    decoded = _decode(path)
    if decoded is None:
        return "path is not valid percent-encoded UTF-8"
    for text in (decoded, _decode(query) or ""):
        found = _CONTROL.search(text)
        if found:
            return f"multiply percent-encoded control character {found.group()!r} in the URL"
    for segment in decoded.split("/"):
        if ";" in segment and segment.split(";", 1)[0] in (".", ".."):
            return f"path parameter on a dot segment ({segment!r})"
    for char in decoded:
        if char.isascii():
            continue
        if char in _CONFUSABLES or _STRUCTURAL & set(unicodedata.normalize("NFKC", char)):
            return (
                f"Unicode look-alike of '.', '/' or '\\' in the path "
                f"(U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"
            )
    return None


def _decode(path: str) -> str | None:
    """The path percent-decoded until stable (at most three rounds), None if not UTF-8."""
    current = path
    for _ in range(3):
        try:
            decoded = urllib.parse.unquote(current, errors="strict")
        except UnicodeDecodeError:
            return None
        if decoded == current:
            break
        current = decoded
    return current
