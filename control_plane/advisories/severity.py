"""One severity level per issue, from CVSS vectors (scored by the ``cvss`` library) or the
distro's own rating.

Levels are Snyk's: critical, high, medium, low; ``unknown`` when a record says nothing
usable. A CVSS vector wins over a distro word (the brief of issue 14); among vectors the
newest CVSS version present is used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import NamedTuple

from control_plane.advisories.records import Severity

LEVELS = ("critical", "high", "medium", "low")
UNKNOWN = "unknown"

# Distro vocabularies: Debian urgency, Ubuntu priority, Red Hat / SUSE / Alma / Rocky impact,
# GHSA-style database_specific severity. Debian's "unimportant" and Ubuntu's "negligible"
# are real but harmless findings: low.
_DISTRO_WORDS = {
    "critical": "critical",
    "important": "high",
    "high": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "negligible": "low",
    "unimportant": "low",
}

_CVSS_ORDER = ("CVSS_V4", "CVSS_V3", "CVSS_V2")


class Rating(NamedTuple):
    level: str  # one of LEVELS or UNKNOWN
    score: float | None  # CVSS base score when the level came from a vector
    vector: str | None


def level_from_score(score: float) -> str:
    """CVSS v3/v4 qualitative rating of a base score (0.0 counts as low, not none)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


@functools.lru_cache(maxsize=16384)
def cvss_score(kind: str, vector: str) -> float | None:
    """Base score of a CVSS vector, None if the library cannot read it."""
    import cvss

    try:
        if kind == "CVSS_V4":
            return float(cvss.CVSS4(vector).base_score)
        if kind == "CVSS_V3":
            return float(cvss.CVSS3(vector).base_score)
        if kind == "CVSS_V2":
            return float(cvss.CVSS2(vector).base_score)
    except (cvss.CVSSError, ValueError, KeyError, IndexError):
        return None
    return None


def distro_level(word: str) -> str:
    """Snyk level for a distro's rating word; ``unknown`` for words without a level."""
    return _DISTRO_WORDS.get(word.strip().strip("*").strip().lower(), UNKNOWN)


def rate(statements: Iterable[Severity]) -> Rating:
    """The rating for an issue from all severity statements that apply to it."""
    vectors: dict[str, str] = {}
    words: list[str] = []
    for statement in statements:
        if statement.kind in _CVSS_ORDER:
            vectors.setdefault(statement.kind, statement.value)
        elif statement.kind == "distro":
            words.append(statement.value)
    for kind in _CVSS_ORDER:
        vector = vectors.get(kind)
        if vector is None:
            continue
        score = cvss_score(kind, vector)
        if score is not None:
            level = level_from_score(score)
            if kind == "CVSS_V2" and level == "critical":
                level = "high"  # CVSS v2 has no critical band
            return Rating(level, score, vector)
    for word in words:
        level = distro_level(word)
        if level != UNKNOWN:
            return Rating(level, None, None)
    return Rating(UNKNOWN, None, None)
