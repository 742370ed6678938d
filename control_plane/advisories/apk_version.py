"""apk's version order, as apk-tools (src/version.c) defines it.

univers' Alpine order is Gentoo's and rejects the post-release suffixes apk accepts (``_git``,
``_cvs``, ``_svn``, ``_hg``), which real Alpine packages carry (musl
``1.2.4_git20230717-r4``); so the rules are written out here, and the tests check them against
univers on every version univers does accept.

A version is a run of tokens: digits separated by dots, an optional letter, suffixes
(``_rc1``, ``_p2``) and a revision (``-r3``). Two versions are compared token by token by
value; when one runs out first, what the other has next decides (a pre-release suffix makes it
older, anything else newer).
"""

from __future__ import annotations


class ApkVersionError(ValueError):
    pass


# Token kinds, in apk-tools' order: a version may only move forward through them, except
# for the back-steps _allowed_back lists.
_DIGIT_OR_ZERO, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _REVISION_NO, _END = range(7)
_INVALID = -1
_PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")  # before the plain release
_POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")  # after it
_ALLOWED_BACK = {(_DIGIT, _DIGIT_OR_ZERO), (_SUFFIX_NO, _SUFFIX), (_LETTER, _DIGIT)}


def _next_kind(kind: int, text: str, pos: int) -> tuple[int, int]:
    """The kind of the token starting at ``pos`` (after the previous one) and its start."""
    if pos >= len(text):
        return _END, pos
    char = text[pos]
    if kind in (_DIGIT, _DIGIT_OR_ZERO) and "a" <= char <= "z":
        new = _LETTER
    elif kind == _LETTER and char.isdigit():
        new = _DIGIT
    elif kind == _SUFFIX and char.isdigit():
        new = _SUFFIX_NO
    else:
        pos += 1
        if char == ".":
            new = _DIGIT_OR_ZERO
        elif char == "_":
            new = _SUFFIX
        elif char == "-" and text[pos : pos + 1] == "r":
            new, pos = _REVISION_NO, pos + 1
        else:
            new = _INVALID
    if new < kind and (kind, new) not in _ALLOWED_BACK:
        new = _INVALID
    return new, pos


def _digits(text: str, pos: int) -> tuple[int, int]:
    end = pos
    while end < len(text) and text[end].isdigit():
        end += 1
    return (int(text[pos:end]) if end > pos else 0), end


def _apk_tokens(text: str) -> list[tuple[int, int]]:
    """(kind, value) pairs of an apk version; a trailing _INVALID marks a malformed rest."""
    tokens: list[tuple[int, int]] = []
    kind, pos = _DIGIT, 0
    while kind not in (_END, _INVALID):
        if pos >= len(text):
            break
        value = 0
        next_kind = _INVALID
        if kind == _DIGIT_OR_ZERO:
            # Leading zeros after a dot: compared as a fraction (1.05 < 1.5).
            end = pos
            while end < len(text) and text[end] == "0":
                end += 1
            value, pos, next_kind = -(end - pos), end, _DIGIT
        elif kind in (_DIGIT, _SUFFIX_NO, _REVISION_NO):
            value, pos = _digits(text, pos)
        elif kind == _LETTER:
            value, pos = ord(text[pos]), pos + 1
        elif kind == _SUFFIX:
            for index, word in enumerate(_PRE_SUFFIXES):
                if text.startswith(word, pos):
                    value, pos = index - len(_PRE_SUFFIXES), pos + len(word)
                    break
            else:
                for index, word in enumerate(_POST_SUFFIXES):
                    if text.startswith(word, pos):
                        value, pos = index, pos + len(word)
                        break
                else:
                    tokens.append((_INVALID, 0))
                    return tokens
        tokens.append((kind, value))
        if pos >= len(text):
            kind = _END
        elif next_kind != _INVALID:
            kind = next_kind
        else:
            kind, pos = _next_kind(kind, text, pos)
            if kind == _INVALID:
                tokens.append((_INVALID, 0))
                return tokens
    return tokens


class ApkVersion:
    """An apk version, ordered as ``apk version -t`` orders it."""

    __slots__ = ("_tokens", "text")

    def __init__(self, text: str) -> None:
        tokens = _apk_tokens(text)
        if (
            not text[:1].isdigit()
            or text.endswith(("-r", ".", "_"))  # apk 2 lets an empty last part pass; apk 3 not
            or (tokens and tokens[-1][0] == _INVALID)
        ):
            raise ApkVersionError(f"not an apk version: {text!r}")
        self.text = text
        self._tokens = tokens

    def compare(self, other: ApkVersion) -> int:
        a, b = self._tokens, other._tokens
        index = 0
        while True:
            if a[index][1] != b[index][1]:  # apk compares values first, whatever their kinds
                return -1 if a[index][1] < b[index][1] else 1
            a_next = a[index + 1][0] if index + 1 < len(a) else _END
            b_next = b[index + 1][0] if index + 1 < len(b) else _END
            if a_next != b_next or a_next == _END:
                break
            index += 1
        if a_next == b_next:
            return 0
        # Equal so far: the version that goes on is newer, unless what follows is a
        # pre-release suffix (1.0_rc1 < 1.0), and a revision counts less than more digits.
        if a_next == _SUFFIX and a[index + 1][1] < 0:
            return -1
        if b_next == _SUFFIX and b[index + 1][1] < 0:
            return 1
        return -1 if a_next > b_next else 1

    def __lt__(self, other: ApkVersion) -> bool:
        return self.compare(other) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApkVersion) and self.compare(other) == 0

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"ApkVersion({self.text!r})"
