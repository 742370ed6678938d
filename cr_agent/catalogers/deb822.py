"""RFC 822-style control paragraphs (dpkg status, DEP-5 copyright), read tolerantly.

python-debian's parser silently drops what it cannot read; a scanner has to say which line of
which file was garbled, so this small reader keeps line numbers and reports bad lines instead.
"""

from __future__ import annotations

from cr_agent.catalogers.warning_limit import WarningLog


class Paragraph:
    """One paragraph: field names as written (case kept) and the line it starts at.

    This and :class:`ParseOutcome` are plain slotted classes: generating dataclasses costs
    every process ~0.3 ms each at import, and nothing compares or prints them.
    """

    __slots__ = ("fields", "line")

    def __init__(self, line: int, fields: dict[str, str] | None = None) -> None:
        self.line = line
        self.fields: dict[str, str] = {} if fields is None else fields

    def get(self, name: str) -> str | None:
        """Field value by case-insensitive name (deb822 field names are case-insensitive)."""
        if name in self.fields:
            return self.fields[name]
        lowered = name.lower()
        for key, value in self.fields.items():
            if key.lower() == lowered:
                return value
        return None


class ParseOutcome:
    __slots__ = ("paragraphs", "warnings")

    def __init__(self, paragraphs: list[Paragraph], warnings: list[str]) -> None:
        self.paragraphs = paragraphs
        self.warnings = warnings


def decode_text(data: bytes, path: str, warnings: list[str]) -> str:
    """UTF-8 text; invalid bytes are replaced and reported once."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.append(f"{path}: not valid UTF-8 at byte {exc.start}; invalid bytes replaced")
        return data.decode("utf-8", errors="replace")


def parse_paragraphs(data: bytes, path: str, *, allow_comments: bool = False) -> ParseOutcome:
    """Split ``data`` into paragraphs; garbled lines are skipped with a warning naming them."""
    warnings: list[str] = WarningLog(path)
    text = decode_text(data, path, warnings)
    if "\x00" in text:
        warnings.append(f"{path}: contains NUL bytes; this is not a text control file")
    paragraphs: list[Paragraph] = []
    # Values are collected as line lists and joined once per paragraph: appending to a str
    # held in a dict copies it each time, quadratic on a huge multi-line field.
    lines_of: dict[str, list[str]] = {}
    start = 0
    last_field: str | None = None

    def finish() -> None:
        if lines_of:
            fields = {name: "\n".join(lines) for name, lines in lines_of.items()}
            paragraphs.append(Paragraph(line=start, fields=fields))

    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            finish()
            lines_of, last_field = {}, None
            continue
        if allow_comments and line.startswith("#"):
            continue
        if line[0] in " \t":
            if last_field is not None:
                lines_of[last_field].append(line.strip())
                continue
        else:
            # "Name: value", the name printable ASCII without spaces or ':' (string methods,
            # not a regular expression: this runs for every line of a dpkg status file)
            name, colon, value = line.partition(":")
            name = name.rstrip(" \t")
            if colon and name and name.isascii() and name.isprintable() and " " not in name:
                if not lines_of:
                    start = lineno
                last_field = name
                if last_field in lines_of:
                    warnings.append(f"{path} line {lineno}: field {last_field} repeated")
                lines_of[last_field] = [value.strip()]
                continue
        warnings.append(f"{path} line {lineno}: expected 'Field: value', got {line[:60]!r}")
    finish()
    return ParseOutcome(paragraphs, warnings)
