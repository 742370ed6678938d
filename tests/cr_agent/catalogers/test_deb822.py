"""The control-paragraph reader: which lines are fields, continuations, comments or garbled."""

from __future__ import annotations

from cr_agent.catalogers.deb822 import parse_paragraphs


def test_field_names_are_printable_ascii_without_spaces_or_colons() -> None:
    text = (
        "Package: a\n"
        "Multi-Arch \t: same\n"  # blanks between the name and ':' are allowed
        "X-Odd!;~Name:  v  \n"  # any printable ASCII but ' ' and ':'
        "Two words: no\n"
        "Naïve: no\n"
        "\x7fDel: no\n"
        "\tTab-led: continuation\n"
        ": no name\n"
        "NoColon\n"
        "Url: http://x:80/y\n"  # the first ':' ends the name
    )
    outcome = parse_paragraphs(text.encode(), "status")
    assert [p.fields for p in outcome.paragraphs] == [
        {
            "Package": "a",
            "Multi-Arch": "same",
            "X-Odd!;~Name": "v\nTab-led: continuation",
            "Url": "http://x:80/y",
        }
    ]
    garbled = [w.split(": expected")[0] for w in outcome.warnings]
    assert garbled == [f"status line {n}" for n in (4, 5, 6, 8, 9)]


def test_paragraphs_comments_and_repeated_fields() -> None:
    text = "# comment\nA: 1\n cont\nA: 2\n\n \nB: 3\n"
    outcome = parse_paragraphs(text.encode(), "copyright", allow_comments=True)
    assert [(p.line, p.fields) for p in outcome.paragraphs] == [(2, {"A": "2"}), (7, {"B": "3"})]
    assert outcome.warnings == ["copyright line 4: field A repeated"]
