"""The one error type of the sans-I/O wire protocol core.

Every decoder in ``shared`` raises :class:`ProtocolError` (never a bare ``KeyError``,
``json.JSONDecodeError`` or ``binascii.Error``) so a driver needs exactly one ``except`` to
turn bad input from a peer into a clear answer instead of a dead connection loop.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Malformed or unexpected wire data; the message names what is wrong."""
