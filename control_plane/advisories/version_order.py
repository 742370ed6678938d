"""Version order per package manager: dpkg, rpm and apk.

- dpkg: parsed and checked by python-debian's ``Version`` (epoch, upstream version, Debian
  revision), compared by dpkg's rules (policy 5.6.12: ``~`` before everything, even the end).
- rpm: parsed and checked by univers' ``RpmVersion`` (epoch, version, release), compared by
  rpmvercmp's rules (``~`` before the end, ``^`` after it, digits after letters).
- apk: :mod:`apk_version` (apk-tools' rules).

For dpkg and rpm the libraries' parsed parts are turned into a sort key, a plain tuple that
Python compares without calling back into Python code: the libraries' own comparisons cost
10-25 microseconds each, and one inventory against 100,000 advisories makes tens of thousands
of them. The tests check the keys' order against python-debian's and univers' comparisons on
every pair of a corpus of real and constructed versions.

Parsed versions are cached: an inventory asks about the same few hundred strings again and
again.
"""

from __future__ import annotations

import functools
from typing import Any

from control_plane.advisories.apk_version import ApkVersion, ApkVersionError

SCHEMES = ("deb", "rpm", "apk")


class VersionError(ValueError):
    """A version string the scheme cannot order."""


# --- dpkg ----------------------------------------------------------------------------------


def _dpkg_weight(char: str) -> int:
    # dpkg's order(): letters by code, "~" before everything (even the end, weight 0), other
    # characters after all letters
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _dpkg_part_key(text: str) -> tuple[Any, ...]:
    """Alternating (non-digit weights + 0 end mark, number) pairs, then an end mark."""
    key: list[Any] = []
    pos, end = 0, len(text)
    while pos < end:
        start = pos
        while pos < end and not text[pos].isdigit():
            pos += 1
        key.append((*(_dpkg_weight(c) for c in text[start:pos]), 0))
        start = pos
        while pos < end and text[pos].isdigit():
            pos += 1
        key.append(int(text[start:pos]) if pos > start else 0)
    if not key:
        key = [(0,), 0]  # "" compares as "0" (an absent revision)
    key.append((0,))
    return tuple(key)


@functools.lru_cache(maxsize=65536)
def _deb(text: str) -> tuple[Any, ...]:
    from debian.debian_support import Version

    try:
        parsed = Version(text)
    except ValueError as exc:
        raise VersionError(f"not a dpkg version: {text!r}") from exc
    return (
        int(parsed.epoch or 0),
        _dpkg_part_key(parsed.upstream_version or ""),
        _dpkg_part_key(parsed.debian_revision or ""),
    )


# --- rpm -----------------------------------------------------------------------------------

# rpmvercmp's token ranks: "~" sorts before the end of the string, "^" after it but before
# any further segment, letters before digits.
_TILDE, _END, _CARET, _ALPHA, _NUMBER = range(5)


def _rpm_part_key(text: str) -> tuple[tuple[Any, ...], ...]:
    key: list[tuple[Any, ...]] = []
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char == "~":
            key.append((_TILDE,))
            pos += 1
        elif char == "^":
            key.append((_CARET,))
            pos += 1
        elif char.isascii() and char.isdigit():
            start = pos
            while pos < end and text[pos].isascii() and text[pos].isdigit():
                pos += 1
            key.append((_NUMBER, int(text[start:pos])))
        elif char.isascii() and char.isalpha():
            start = pos
            while pos < end and text[pos].isascii() and text[pos].isalpha():
                pos += 1
            key.append((_ALPHA, text[start:pos]))
        else:
            pos += 1  # every other character only separates segments
    key.append((_END,))
    return tuple(key)


@functools.lru_cache(maxsize=65536)
def _rpm(text: str) -> tuple[Any, ...]:
    from univers.versions import RpmVersion

    if not text.strip():
        raise VersionError("empty rpm version")
    try:
        parsed = RpmVersion(text).value
    except (ValueError, TypeError) as exc:  # univers raises InvalidVersion, a ValueError
        raise VersionError(f"not an rpm version: {text!r}") from exc
    if not parsed.version:
        raise VersionError(f"not an rpm version: {text!r}")
    return (
        int(parsed.epoch or 0),
        _rpm_part_key(parsed.version),
        _rpm_part_key(parsed.release or ""),
    )


@functools.lru_cache(maxsize=65536)
def _apk(text: str) -> ApkVersion:
    try:
        return ApkVersion(text)
    except ApkVersionError as exc:
        raise VersionError(str(exc)) from None


_PARSERS = {"deb": _deb, "rpm": _rpm, "apk": _apk}


def parse(scheme: str, text: str) -> Any:
    """A value ordered as ``scheme`` orders versions; VersionError if it cannot be."""
    try:
        parser = _PARSERS[scheme]
    except KeyError:
        raise VersionError(f"unknown version scheme {scheme!r}") from None
    return parser(text)


def compare(scheme: str, left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` is older than, the same as or newer than ``right``."""
    a, b = parse(scheme, left), parse(scheme, right)
    if a < b:
        return -1
    if b < a:
        return 1
    return 0
