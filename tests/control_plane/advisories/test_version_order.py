"""Version order per package manager, including the edge cases advisories depend on."""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable

import pytest
from debian.debian_support import version_compare
from univers.versions import AlpineLinuxVersion, RpmVersion

from control_plane.advisories.version_order import VersionError, compare, parse


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0-1", "1:0.1-1"),  # any epoch beats no epoch
        ("2.3~rc1-1", "2.3-1"),  # ~ sorts before the release
        ("2.3~rc1-1", "2.3~rc2-1"),
        ("2.3-1~bpo12+1", "2.3-1"),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u6"),
        ("3.0.11-1~deb12u2", "3.0.11-1~deb12u3"),
        ("1.2-9", "1.2-10"),
        ("1:4.13+dfsg1-1", "1:4.13+dfsg1-1+deb12u1"),
    ],
)
def test_dpkg_order(older: str, newer: str) -> None:
    assert compare("deb", older, newer) == -1
    assert compare("deb", newer, older) == 1


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("3.0.7-27.el9", "1:3.0.7-25.el9"),  # epoch outweighs version and release
        ("1:3.0.7-25.el9", "1:3.0.7-27.el9"),
        ("1.0~rc1-1", "1.0-1"),  # tilde: before the release
        ("1.0-1", "1.0^git20240101-1"),  # caret: after the release, before the next
        ("1.0^git20240101-1", "1.0.1-1"),
        ("2.31-9.3.2", "2.31-10"),
        ("5.1.8-9.el9", "5.1.8-9.el9_4.1"),
    ],
)
def test_rpm_order(older: str, newer: str) -> None:
    assert compare("rpm", older, newer) == -1
    assert compare("rpm", newer, older) == 1


def test_rpm_missing_epoch_equals_epoch_zero() -> None:
    assert compare("rpm", "2.3-4.el9", "0:2.3-4.el9") == 0


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.2.3-r9", "1.2.3-r10"),  # revisions compare as numbers
        ("1.2.3_rc1-r0", "1.2.3-r0"),  # pre-release suffixes: before the release
        ("1.2.3_alpha1", "1.2.3_beta1"),
        ("1.2.3_beta2", "1.2.3_pre1"),
        ("1.2.3_pre1", "1.2.3_rc1"),
        ("1.2.3-r5", "1.2.3_p1-r0"),  # _p: after the release
        ("1.2.3", "1.2.3-r1"),
        ("1.2.4_git20230717-r4", "1.2.4_git20230718-r0"),
        ("1.2.4-r9", "1.2.4_git20230717-r4"),  # _git: a post-release snapshot
        ("1.2.4_cvs1", "1.2.4_svn1"),
        ("1.05", "1.5"),  # a leading zero compares as a fraction
        ("1.0", "1.0a"),
        ("1.0-r1", "1.0.1"),
        ("2.9.14-r2", "2.10-r0"),
        ("1.0_rc1", "1.0_rc1_p2"),
        ("1.0_rc1_p2", "1.0_rc2"),
    ],
)
def test_apk_order(older: str, newer: str) -> None:
    assert compare("apk", older, newer) == -1
    assert compare("apk", newer, older) == 1


def test_apk_equal_versions() -> None:
    assert compare("apk", "3.1.4-r5", "3.1.4-r5") == 0


# Versions of real Alpine packages that univers (Gentoo rules) can also read.
_REAL_APK = [
    "1.36.1-r29",
    "1.36.1-r30",
    "3.1.4-r5",
    "3.1.4-r6",
    "3.1.4_rc1-r0",
    "3.1.4_p1-r0",
    "2.9.14-r2",
    "2.10-r0",
    "2.10.1-r0",
    "20240226-r0",
    "1.2.4-r2",
    "1.2.4a-r0",
    "4.0_beta1-r0",
    "0.9.8-r0",
    "0.10-r0",
    "1.0_pre2-r1",
]


def test_apk_order_agrees_with_univers_where_univers_reads_the_versions() -> None:
    for left, right in itertools.product(_REAL_APK, repeat=2):
        a, b = AlpineLinuxVersion(left), AlpineLinuxVersion(right)
        expected = -1 if a < b else (1 if b < a else 0)
        assert compare("apk", left, right) == expected, (left, right)


@pytest.mark.parametrize(
    ("scheme", "text"),
    [
        ("deb", "abc!"),
        ("deb", ""),
        ("deb", "a:1.0"),
        ("rpm", ""),
        ("rpm", "a:1.0"),
        ("apk", "abc"),
        ("apk", "1.2.3-r"),
        ("apk", "1.2.3_bogus1"),
        ("apk", ""),
        ("npm", "1.0.0"),
    ],
)
def test_unreadable_versions_raise_version_error(scheme: str, text: str) -> None:
    with pytest.raises(VersionError):
        parse(scheme, text)


def _random_versions(rng: random.Random, count: int, alphabet: str, *, separator: str) -> list[str]:
    """Versions with an optional epoch, a part that starts with a digit, and a release part."""
    found = []
    for _ in range(count):
        epoch = f"{rng.randint(0, 2)}:" if rng.random() < 0.3 else ""
        upstream = rng.choice("0123456789") + "".join(
            rng.choice(alphabet) for _ in range(rng.randint(0, 6))
        )
        release = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        found.append(f"{epoch}{upstream}{separator}{release}")
    return found


_REAL_DEB = (
    "1.0-1 1:0.1-1 2.3~rc1-1 2.3-1~bpo12+1 7.88.1-10+deb12u5 3.0.11-1~deb12u2 "
    "1:4.13+dfsg1-1 2.36-9+deb12u4 12.2.0-14 1.0 1.0~ 1.0a 1.0.0 0 1.0-0 1.0-00"
).split()


_REAL_RPM = (
    "3.0.7-27.el9 1:3.0.7-25.el9 1.0~rc1-1 1.0-1 1.0^git20240101-1 1.0.1-1 2.31-9.3.2 "
    "2.31-10 5.1.8-9.el9_4.1 11.2.1+git610-1.3.9 1.0a-1 1.0.a-1 1.0-1.el9 1.0-1.el9~ "
    "01.0-1"
).split()


def _python_debian(left: str, right: str) -> int:
    result = version_compare(left, right)
    return (result > 0) - (result < 0)


_univers_rpm_version = functools.cache(RpmVersion)


def _univers_rpm(left: str, right: str) -> int:
    a, b = _univers_rpm_version(left), _univers_rpm_version(right)
    return -1 if a < b else (1 if b < a else 0)


@pytest.mark.parametrize(
    ("scheme", "real", "alphabet", "library"),
    [
        ("deb", _REAL_DEB, "0123456789.+~abcAB", _python_debian),
        ("rpm", _REAL_RPM, "0123456789.abc~^_+", _univers_rpm),
    ],
)
def test_sort_keys_order_as_the_library_does(
    scheme: str, real: list[str], alphabet: str, library: Callable[[str, str], int]
) -> None:
    corpus = real + _random_versions(random.Random(14), 100, alphabet, separator="-")
    for left, right in itertools.product(corpus, repeat=2):
        assert compare(scheme, left, right) == library(left, right), (left, right)
