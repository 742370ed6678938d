"""Decompression, tar reading and layer reading fed byte-exact streams built in code."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest
import zstandard

from cr_agent.image.decompress import DecompressionError, Decompressor, LayerTooLarge
from cr_agent.image.layer import FileSelector, LayerContents, LayerReader, normalise_path
from cr_agent.image.tar_stream import TarError, TarReader
from tests.support.images import (
    OPAQUE,
    WHITEOUT,
    Hardlink,
    Symlink,
    make_tar,
    raw_tar,
    sha256_digest,
)


class WantEtc:
    name = "etc"
    version = "1"
    max_file_size = 1000
    path_prefixes = None

    def wants(self, path: str) -> bool:
        return path.startswith("etc/")

    def catalog(self, files):  # pragma: no cover - not used here
        raise NotImplementedError


def _decompress(data: bytes, limit: int = 1 << 30, step: int = 7777) -> bytes:
    out = bytearray()
    d = Decompressor(out.extend, limit=limit)
    for i in range(0, len(data), step):
        d.feed(data[i : i + step])
    d.finish()
    return bytes(out)


def test_gzip_multi_member_zstd_multi_frame_and_plain():
    a, b = os.urandom(100_000), b"x" * 300_000
    assert _decompress(gzip.compress(a) + gzip.compress(b)) == a + b
    z = zstandard.ZstdCompressor()
    assert _decompress(z.compress(a) + z.compress(b)) == a + b
    assert _decompress(a) == a
    assert _decompress(b"") == b""


def test_truncated_and_corrupt_gzip():
    blob = gzip.compress(os.urandom(50_000))
    with pytest.raises(DecompressionError, match="truncated"):
        _decompress(blob[:-100])
    bad = bytearray(blob)
    bad[20:40] = b"\xff" * 20
    with pytest.raises(DecompressionError):
        _decompress(bytes(bad))


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_bombs_stop_at_the_limit_in_bounded_pieces(kind):
    zeros = b"\0" * (200 << 20)
    blob = (
        gzip.compress(zeros, 9)
        if kind == "gzip"
        else zstandard.ZstdCompressor(level=19).compress(zeros)
    )
    assert len(blob) < 1 << 20
    biggest = 0

    def sink(piece: bytes) -> None:
        nonlocal biggest
        biggest = max(biggest, len(piece))

    d = Decompressor(sink, limit=16 << 20)
    with pytest.raises(LayerTooLarge):
        d.feed(blob)
        d.finish()
    assert d.total_out <= (17 << 20) and biggest <= 1 << 20


def _entries(tar_bytes: bytes, step: int) -> list[tuple[str, str, bytes | None]]:
    seen = []
    reader = TarReader(
        lambda e: e.name.endswith(".keep"), lambda e, d: seen.append((e.name, e.kind, d))
    )
    for i in range(0, len(tar_bytes), step):
        reader.feed(tar_bytes[i : i + step])
    reader.close()
    return seen


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_formats_long_names_any_chunking(fmt):
    long_dir = "d" * 120 if fmt != tarfile.USTAR_FORMAT else "u" * 90
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in (
            (f"{long_dir}/{'n' * 80}.keep", b"kept!"),
            ("skip.bin", os.urandom(3000)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("ln")
        link.type = tarfile.SYMTYPE
        link.linkname = "t" * 150 if fmt != tarfile.USTAR_FORMAT else "t" * 90
        tar.addfile(link)
    data = buf.getvalue()
    for step in (1, 511, 512, 4096, len(data)):
        assert _entries(data, step) == [
            (f"{long_dir}/{'n' * 80}.keep", "file", b"kept!"),
            ("skip.bin", "file", None),
            ("ln", "symlink", None),
        ]


def test_tar_garbage_and_truncation():
    with pytest.raises(TarError, match="checksum"):
        _entries(os.urandom(2048), 512)
    data = make_tar({"a.keep": os.urandom(5000)})
    with pytest.raises(TarError, match="truncated"):
        _entries(data[:3000], 512)


def _read(tar_bytes: bytes, compress=gzip.compress, **kw) -> LayerContents:
    reader = LayerReader(
        FileSelector([WantEtc()], 1 << 20),
        label="0",
        max_layer_bytes=1 << 30,
        diff_id=sha256_digest(tar_bytes),
        **kw,
    )
    blob = compress(tar_bytes)
    for i in range(0, len(blob), 1000):
        reader.feed(blob[i : i + 1000])
    return reader.finish()


def test_layer_reader_keeps_wanted_and_records_changes():
    contents = _read(
        make_tar(
            {
                "etc/os-release": b"ID=x\n",
                "etc/big": b"y" * 2000,  # over the reader's 1000-byte limit
                "usr/bin/tool": b"not wanted",
                "etc/hard": Hardlink("etc/os-release"),
                "etc/link": Symlink("../usr/lib/os-release"),
                "var/gone": WHITEOUT,
                "opt/app": OPAQUE,
            }
        )
    )
    assert contents.files == {"etc/os-release": b"ID=x\n", "etc/hard": b"ID=x\n"}
    assert contents.symlinks == {"etc/link": "../usr/lib/os-release"}
    assert contents.whiteouts == ["var/gone"] and contents.opaque_dirs == ["opt/app"]
    assert any("etc/big is 2000 bytes" in w for w in contents.warnings)
    assert contents.complete
    assert LayerContents.from_bytes(contents.to_bytes()) == contents


def test_layer_reader_refuses_dotdot_and_notes_absolute_names():
    contents = _read(
        raw_tar(
            [
                ("../../etc/passwd", "file", b"root"),
                ("/etc/abs", "file", b"abs"),
                ("etc/x", "hardlink", "../../etc/shadow"),
            ]
        )
    )
    assert contents.files == {"etc/abs": b"abs"}
    assert sum("climbs out" in w for w in contents.warnings) == 2
    assert any("absolute name" in w for w in contents.warnings)


def test_layer_reader_diff_id_mismatch_marks_untrusted():
    tar_bytes = make_tar({"etc/a": b"1"})
    reader = LayerReader(
        FileSelector([WantEtc()], 1 << 20),
        label="0",
        max_layer_bytes=1 << 30,
        diff_id="sha256:" + "0" * 64,
    )
    reader.feed(gzip.compress(tar_bytes))
    contents = reader.finish()
    assert not contents.complete and "hashes to" in contents.warnings[0]


def test_normalise_path():
    assert normalise_path("./a//b/./c") == "a/b/c"
    assert normalise_path("/abs/x") == "abs/x"
    assert normalise_path("a/../b") is None


def test_selector_prefix_hint_changes_nothing():
    """Readers' ``path_prefixes`` only make the selector faster: same answers, including
    merged-/usr aliases, as asking every reader; a reader without the hint is always asked."""
    from cr_agent.catalogers import default_catalogers
    from tests.cr_agent.catalogers.test_default_catalogers import PATH_SAMPLES

    class NoHint:  # default readers with the hint hidden
        def __init__(self, inner):
            self.inner = inner
            self.name, self.version = inner.name, inner.version
            self.max_file_size = inner.max_file_size
            self.path_prefixes = None

        def wants(self, path):
            return self.inner.wants(path)

    fast = FileSelector(default_catalogers(), 1 << 20)
    slow = FileSelector([NoHint(c) for c in default_catalogers()], 1 << 20)
    paths = PATH_SAMPLES + ["usr/" + p for p in PATH_SAMPLES] + ["usr/lib/os-release.x", "x"]
    assert any(fast.cap(p) is not None for p in paths)
    assert [fast.cap(p) for p in paths] == [slow.cap(p) for p in paths]
    assert [fast.wants(p) for p in paths] == [slow.wants(p) for p in paths]
    assert FileSelector([*default_catalogers(), WantEtc()], 1 << 20).cap("etc/passwd") == 1000


def test_header_byte_sum_is_the_plain_sum():
    """The adler32-based header sum equals the textbook loop, high bytes included."""
    from cr_agent.image.tar_stream import _byte_sum

    for block in [bytes(512), b"\xff" * 512, os.urandom(512), os.urandom(512)]:
        assert _byte_sum(block) == sum(block[:148]) + 8 * 32 + sum(block[156:])
