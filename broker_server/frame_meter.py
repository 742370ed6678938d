"""How large each websocket frame says it is, read from its header before its payload arrives.

The server charges a frame's declared payload to its memory budget as soon as the header is in,
so a message the budget cannot hold is refused before a byte of it is buffered. This is not a
parser: it skips payloads without looking at them and leaves every check to aiohttp's reader,
which sees the same bytes. Bytes in, :class:`FrameHeader` events out; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

#: RFC 6455 opcodes of data frames (continuation, text, binary); 8-10 are control frames
DATA_OPCODES = frozenset({0, 1, 2})


@dataclass(frozen=True, slots=True)
class FrameHeader:
    opcode: int
    fin: bool
    length: int

    @property
    def is_data(self) -> bool:
        return self.opcode in DATA_OPCODES


class FrameMeter:
    """Feed it the bytes of one direction of a websocket, in order; it reports each header."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[FrameHeader]:
        found: list[FrameHeader] = []
        view = memoryview(data)
        pos = 0
        end = len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            # gather the header: 2 bytes, then 0/2/8 of extended length and 0/4 of mask key
            need = self._header_size()
            take = min(need - len(self._header), end - pos)
            self._header += view[pos : pos + take]
            pos += take
            if len(self._header) < self._header_size():
                continue
            header = self._decode()
            self._header.clear()
            self._skip = header.length
            found.append(header)
        return found

    def _header_size(self) -> int:
        if len(self._header) < 2:
            return 2
        flag = self._header[1] & 0x7F
        extended = 2 if flag == 126 else 8 if flag == 127 else 0
        mask = 4 if self._header[1] & 0x80 else 0
        return 2 + extended + mask

    def _decode(self) -> FrameHeader:
        first, second = self._header[0], self._header[1]
        flag = second & 0x7F
        if flag == 126:
            length = int.from_bytes(self._header[2:4], "big")
        elif flag == 127:
            length = int.from_bytes(self._header[2:10], "big")
        else:
            length = flag
        return FrameHeader(opcode=first & 0x0F, fin=bool(first & 0x80), length=length)
