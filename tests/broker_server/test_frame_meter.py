"""The frame meter reports each websocket frame's declared size from its header alone, however
the bytes are split, and never mistakes payload bytes for a header."""

from __future__ import annotations

import struct

import pytest

from broker_server.frame_meter import FrameHeader, FrameMeter


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head = struct.pack("!BB", first, bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    # payload bytes that look like headers must be skipped, not read (masking is irrelevant here)
    return head + (b"\x81\xff\x00\x00" if mask else b"") + payload


STREAM = [
    (frame(1, b"\x81\x7f" * 40), FrameHeader(1, True, 80)),
    (frame(2, b"\x82" * 300, fin=False), FrameHeader(2, False, 300)),
    (frame(9, b"ping"), FrameHeader(9, True, 4)),
    (frame(0, b"\x01" * 70_000), FrameHeader(0, True, 70_000)),
    (frame(1, b"", mask=False), FrameHeader(1, True, 0)),
    (frame(8, b"\x03\xe8bye"), FrameHeader(8, True, 5)),
]
DATA = b"".join(data for data, _ in STREAM)
EXPECTED = [header for _, header in STREAM]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 13, 4096, len(DATA)])
def test_headers_are_found_whatever_the_split(piece):
    meter = FrameMeter()
    found: list[FrameHeader] = []
    for start in range(0, len(DATA), piece):
        found += meter.feed(DATA[start : start + piece])
    assert found == EXPECTED


def test_a_header_is_reported_before_its_payload_arrives():
    meter = FrameMeter()
    data = frame(1, b"x" * 21_000_000)
    assert meter.feed(data[:14]) == [FrameHeader(1, True, 21_000_000)]
    assert meter.feed(data[14:1000]) == []


def test_data_and_control_frames_are_told_apart():
    assert FrameHeader(0, True, 1).is_data and FrameHeader(2, True, 1).is_data
    assert not FrameHeader(8, True, 2).is_data and not FrameHeader(10, True, 0).is_data
