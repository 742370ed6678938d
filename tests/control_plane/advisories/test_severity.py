"""Severity levels from CVSS vectors and distro ratings."""

from __future__ import annotations

from control_plane.advisories.records import Severity
from control_plane.advisories.severity import distro_level, rate
from tests.control_plane.advisories.feeds import CVSS_CRITICAL, CVSS_HIGH, CVSS_MEDIUM


def test_cvss_v3_vectors_are_scored() -> None:
    assert rate([Severity("CVSS_V3", CVSS_CRITICAL)]) == ("critical", 9.8, CVSS_CRITICAL)
    assert rate([Severity("CVSS_V3", CVSS_HIGH)]).level == "high"
    assert rate([Severity("CVSS_V3", CVSS_MEDIUM)]).level == "medium"


def test_cvss_v4_is_preferred_and_v2_has_no_critical() -> None:
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"
    assert rate([Severity("CVSS_V3", CVSS_CRITICAL), Severity("CVSS_V4", v4)]).vector == v4
    v2 = rate([Severity("CVSS_V2", "AV:N/AC:L/Au:N/C:C/I:C/A:C")])
    assert (v2.level, v2.score) == ("high", 10.0)


def test_vector_beats_distro_word_and_bad_vector_falls_back() -> None:
    assert rate([Severity("distro", "low"), Severity("CVSS_V3", CVSS_HIGH)]).level == "high"
    fallback = rate([Severity("CVSS_V3", "CVSS:3.1/AV:N/garbage"), Severity("distro", "Important")])
    assert fallback == ("high", None, None)


def test_distro_words() -> None:
    assert [
        distro_level(w) for w in ("Critical", "important", "Moderate", "low**", "negligible")
    ] == [
        "critical",
        "high",
        "medium",
        "low",
        "low",
    ]
    assert distro_level("not yet assigned") == "unknown"
    assert rate([]).level == "unknown"
