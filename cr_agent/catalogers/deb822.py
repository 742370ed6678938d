"""RFC 822-style control paragraphs (dpkg status, DEP-5 copyright), read tolerantly.

python-debian's parser silently drops what it cannot read; a scanner has to say which line of
which file was garbled, so this small reader keeps line numbers and reports bad lines instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FIELD = re.compile(r"([!-9;-~][!-9;-~]*)[ \t]*:(.*)")  # a field name is printable ASCII but ':'
_MAX_WARNINGS_PER_FILE = 10


@dataclass(slots=True)
class Paragraph:
    """One paragraph: field names as written (case kept) and the line it starts at."""

    line: int
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """Field value by case-insensitive name (deb822 field names are case-insensitive)."""
        if name in self.fields:
            return self.fields[name]
        lowered = name.lower()
        for key, value in self.fields.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(slots=True)
class ParseOutcome:
    paragraphs: list[Paragraph]
    warnings: list[str]


def decode_text(data: bytes, path: str, warnings: list[str]) -> str:
    """UTF-8 text; invalid bytes are replaced and reported once."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.append(f"{path}: not valid UTF-8 at byte {exc.start}; invalid bytes replaced")
        return data.decode("utf-8", errors="replace")


def parse_paragraphs(data: bytes, path: str, *, allow_comments: bool = False) -> ParseOutcome:
    """Split ``data`` into paragraphs; garbled lines are skipped with a warning naming them."""
    warnings: list[str] = []
    text = decode_text(data, path, warnings)
    if "\x00" in text:
        warnings.append(f"{path}: contains NUL bytes; this is not a text control file")
    paragraphs: list[Paragraph] = []
    current: Paragraph | None = None
    last_field: str | None = None
    bad_lines = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if current is not None and current.fields:
                paragraphs.append(current)
            current, last_field = None, None
            continue
        if allow_comments and line.startswith("#"):
            continue
        if line[0] in " \t":
            if current is not None and last_field is not None:
                current.fields[last_field] += "\n" + line.strip()
                continue
        else:
            match = _FIELD.fullmatch(line)
            if match:
                if current is None:
                    current = Paragraph(line=lineno)
                last_field = match.group(1)
                if last_field in current.fields:
                    warnings.append(f"{path} line {lineno}: field {last_field} repeated")
                current.fields[last_field] = match.group(2).strip()
                continue
        bad_lines += 1
        if bad_lines <= _MAX_WARNINGS_PER_FILE:
            warnings.append(f"{path} line {lineno}: expected 'Field: value', got {line[:60]!r}")
    if current is not None and current.fields:
        paragraphs.append(current)
    if bad_lines > _MAX_WARNINGS_PER_FILE:
        warnings.append(f"{path}: {bad_lines - _MAX_WARNINGS_PER_FILE} more garbled lines skipped")
    return ParseOutcome(paragraphs, warnings)
