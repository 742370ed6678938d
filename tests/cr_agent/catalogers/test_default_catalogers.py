"""All default catalogers over one image's files, each seeing only the paths it wants."""

from __future__ import annotations

from cr_agent.catalogers import Cataloger, default_catalogers
from tests.cr_agent.catalogers.rpm_fixtures import SQLITE_DB, expected_rows, rows_of
from tests.cr_agent.catalogers.test_dpkg import DEP5, status_file

IMAGE_FILES = {
    "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n',
    "etc/debian_version": b"12.5\n",
    "etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
    "var/lib/dpkg/status": status_file(),
    "var/lib/dpkg/info/login.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/login\n",
    "usr/share/doc/login/copyright": DEP5,
    "usr/share/doc/login/changelog.Debian.gz": b"\x1f\x8b",
    # An rpm database inside a Debian image (e.g. rpm installed for packaging work).
    "var/lib/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes(),
    "usr/bin/bash": b"\x7fELF",
}


def run(cataloger: Cataloger):
    wanted = {path: data for path, data in IMAGE_FILES.items() if cataloger.wants(path)}
    return cataloger.catalog(wanted)


def test_each_cataloger_reads_its_own_files() -> None:
    catalogers = default_catalogers()
    assert len({c.name for c in catalogers}) == len(catalogers)
    for cataloger in catalogers:
        assert isinstance(cataloger, Cataloger)
        assert cataloger.version and cataloger.max_file_size > 0
        assert not cataloger.wants("etc/passwd") and not cataloger.wants("usr/bin/bash")
    results = {c.name: run(c) for c in catalogers}
    assert all(r.warnings == [] for r in results.values()), {
        n: r.warnings for n, r in results.items()
    }
    distro = results["os-release"].distro
    assert distro is not None and (distro.id, distro.version_id) == ("debian", "12")
    assert [p.name for p in results["dpkg"].packages] == [
        "base-files",
        "libgcc-s1",
        "login",
        "tzdata",
        "libc6",
        "held",
    ]
    assert rows_of(results["rpm"].packages) == expected_rows()
    assert results["apk"].packages == []
    assert results["rpmmanifest"].packages == []  # stands aside: a real rpmdb is present
    assert all(r.distro is None for n, r in results.items() if n != "os-release")


#: paths each default reader wants, and near misses around them
PATH_SAMPLES = [
    *IMAGE_FILES,
    "etc/os-release.d/x",
    "etc/alpine-release",
    "etc/redhat-release",
    "etc/system-release-cpe",
    "etc/lsb-release",
    "usr/lib/os-release",
    "lib/apk/db/installed",
    "usr/lib/apk/db/installed",
    "lib/apk/db/triggers",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/status.d/base",
    "var/lib/dpkg/status.d/base.md5sums",
    "usr/share/doc/curl/copyright",
    "usr/share/doc/curl/x/copyright",
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite-wal",
    "usr/share/rpm/Packages",
    "var/lib/rpmmanifest/container-manifest-2",
    "var/lib/rpmmanifest/container-manifest-1",
]


def test_path_prefixes_cover_every_wanted_path() -> None:
    """The layer engine skips entries outside ``path_prefixes`` without asking ``wants``: a
    prefix list that missed a wanted path would silently lose that reader's input."""
    for cataloger in default_catalogers():
        prefixes = cataloger.path_prefixes
        assert prefixes is not None, cataloger.name
        wanted = [p for p in PATH_SAMPLES if cataloger.wants(p)]
        assert wanted, cataloger.name
        assert all(p.startswith(prefixes) for p in wanted), cataloger.name
