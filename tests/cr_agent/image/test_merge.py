"""Merging layers (whiteouts, opaque dirs, symlinks) and attributing packages to layers."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cr_agent.catalogers.base import CatalogResult, Package
from cr_agent.image.filesystem import ImageFilesystem, SymlinkLoop
from cr_agent.image.inventory import CatalogMemo, build_inventory
from cr_agent.image.layer import LayerContents


class ListCataloger:
    """A tiny reader: ``pkgs/list`` holds ``name=version`` lines."""

    name = "list"
    version = "1"
    max_file_size = 1 << 20
    path_prefixes = None

    def __init__(self) -> None:
        self.calls = 0

    def wants(self, path: str) -> bool:
        return path == "pkgs/list"

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        self.calls += 1
        result = CatalogResult()
        for line in files.get("pkgs/list", b"").decode().split():
            if line == "boom":
                raise RuntimeError("reader bug")
            name, _, version = line.partition("=")
            result.packages.append(Package("deb", name, version, arch="amd64"))
        return result


def layer(**kw) -> LayerContents:
    return LayerContents(**kw)


def test_resolve_relative_absolute_dotdot_and_loops():
    fs = ImageFilesystem()
    fs.apply(
        layer(
            symlinks={
                "lib": "usr/lib",
                "etc/os-release": "../usr/lib/os-release",
                "a": "/b",
                "b": "a",
                "up": "../../../../usr",
            }
        )
    )
    assert fs.resolve("lib/apk/db/installed") == "usr/lib/apk/db/installed"
    assert fs.resolve("etc/os-release") == "usr/lib/os-release"
    assert fs.resolve("up/lib") == "usr/lib"  # '..' stops at the image root
    with pytest.raises(SymlinkLoop):
        fs.resolve("a/x")


def test_whiteout_opaque_and_directory_replacing_symlink():
    fs = ImageFilesystem()
    fs.apply(
        layer(
            files={"d/a": b"1", "d/sub/b": b"2", "e/c": b"3", "keep": b"4"}, symlinks={"lnk": "d"}
        )
    )
    fs.apply(layer(opaque_dirs=["d"], files={"d/new": b"5"}, whiteouts=["e"], dirs=["lnk"]))
    assert fs.files == {"d/new": b"5", "keep": b"4"}
    assert fs.symlinks == {}


def test_view_includes_paths_reached_through_symlinks():
    fs = ImageFilesystem()
    fs.apply(
        layer(
            files={"usr/lib/os-release": b"ID=debian\n"},
            symlinks={"etc/os-release": "../usr/lib/os-release", "lib": "usr/lib"},
        )
    )
    view = fs.view(lambda p: p in ("etc/os-release", "lib/os-release"))
    assert view == {"etc/os-release": b"ID=debian\n", "lib/os-release": b"ID=debian\n"}


def test_attribution_upgrade_removal_and_return():
    reader = ListCataloger()
    layers = [
        layer(files={"pkgs/list": b"a=1 b=1"}),
        layer(files={"other": b"x"}),  # no change for the reader
        layer(files={"pkgs/list": b"a=1 b=2"}),  # b upgraded
        layer(files={"pkgs/list": b"b=2"}),  # a removed
        layer(files={"pkgs/list": b"a=1 b=2"}),  # a back
    ]
    inv = build_inventory(layers, [reader], memo=CatalogMemo())
    assert {(p.package.name, p.package.version, p.layer_index) for p in inv.packages} == {
        ("a", "1", 4),
        ("b", "2", 2),
    }
    # not re-run for the layer that did not touch its files; layer 4 repeats layer 2 (memo)
    assert reader.calls == 3


def test_memo_shares_results_and_reader_bugs_become_warnings():
    reader = ListCataloger()
    memo = CatalogMemo()
    for _ in range(3):
        build_inventory([layer(files={"pkgs/list": b"a=1"})], [reader], memo=memo)
    assert reader.calls == 1
    inv = build_inventory([layer(files={"pkgs/list": b"boom"})], [reader], memo=memo)
    assert inv.packages == [] and inv.warnings == ["list: reader failed: RuntimeError: reader bug"]


def test_many_symlinks_and_whiteouts_stay_cheap():
    # a Debian-like image: thousands of .so links per layer, hundreds of removals
    import time

    layers = []
    for n in range(6):
        links = {
            f"usr/lib/x86_64-linux-gnu/lib{n}-{i}.so": f"lib{n}-{i}.so.1" for i in range(10000)
        }
        links["lib"] = "usr/lib"
        layers.append(
            layer(
                files={"pkgs/list": f"a=1 layer{n}=1".encode()},
                symlinks=links,
                whiteouts=[f"usr/lib/x86_64-linux-gnu/lib{n - 1}-{i}.so" for i in range(1000)],
                dirs=["usr", "usr/lib", "var/lib"],
            )
        )
    start = time.perf_counter()
    inv = build_inventory(layers, [ListCataloger()], memo=CatalogMemo())
    elapsed = time.perf_counter() - start
    assert {p.package.name for p in inv.packages} == {"a", "layer5"}
    assert elapsed < 2.0, f"merge took {elapsed:.2f}s"
