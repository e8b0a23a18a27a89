"""Escaping text that normreg does not control (suite, variant and metric names, error messages, environment
values) for each output format, in one place so that every renderer escapes the same way.

Names reach the renderers from suite files, but also from report files, baselines and CSVs written elsewhere:
a name may hold markup (`<script>`), Markdown or math syntax (`cost$x^$`) or control characters.
"""

from __future__ import annotations

import html
import re

# XML 1.0 allows tab, newline and carriage return but no other C0 control character, and no lone surrogate
# or U+FFFE/U+FFFF: a JUnit file holding one does not parse.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Markdown: the characters that always have a meaning inline or in a table ($ starts math on GitHub), an
# underscore that can open or close emphasis (not one inside a word: GitHub ignores `test_acc`), a `<` that
# starts a tag and an `&` that starts an entity. Everything else is left as typed, so the raw file stays readable.
_MARKDOWN = re.compile(r"[\\`*\[\]|$~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_TAG_OR_ENTITY = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?[A-Za-z0-9]+;)")


def _escape_code(match: re.Match[str]) -> str:
    c = match.group()
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def plain(text: str) -> str:
    """Control characters (terminal escape sequences among them) written out as `\\xNN`; tabs and newlines kept."""
    return _CONTROL.sub(_escape_code, text)


def xml_text(text: str) -> str:
    """Text that XML 1.0 can hold: characters it forbids written out as `\\xNN` (ElementTree escapes the rest)."""
    return _XML_INVALID.sub(_escape_code, text)


def html_text(text: str) -> str:
    """Text for an HTML element or a quoted attribute."""
    return html.escape(plain(text), quote=True)


def markdown_text(text: str) -> str:
    """Text for Markdown that renders as itself: no HTML, emphasis, links, code, math or table breaks."""
    text = _TAG_OR_ENTITY.sub(lambda m: "&lt;" if m.group() == "<" else "&amp;", plain(text))
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), text)
