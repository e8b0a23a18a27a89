"""Hostile names (markup, Markdown and math syntax, control characters) rendered into every output format: each
result parses as its format, and nothing in it runs or breaks out of its place."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from normreg.render.escape import html_text, markdown_text, plain, xml_text
from normreg.report.file import ReportFile, report_from_json

SCRIPT = '<script>document.title="pwned"</script>'
IMG = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE = f"cost$x^$ {SCRIPT}{IMG} \x01\x08\x1b[2J ]]> &amp; *bold* _em_ `code` [link](http://x) | ~~s~~"


@pytest.fixture(scope="module")
def hostile(report_json: dict[str, Any]) -> ReportFile:
    """The scripted nightly report with a variant, and a run's error message, replaced by hostile text."""
    text = json.dumps(report_json)
    text = text.replace("twin", json.dumps(HOSTILE)[1:-1]).replace("CUDA error", json.dumps(HOSTILE)[1:-1])
    # A report file naming a variant with control characters is refused since issue 23 (normreg.names); the
    # renderers must still escape such a name, so the schema's rules are skipped to build this one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("normreg.report.file.check_rules", lambda data, source: None)
        return report_from_json(json.loads(text))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


def _assert_inert(page: str) -> None:
    tags = _tags(page)
    assert "script" not in {t for t, _ in tags}
    assert not [(t, a) for t, attrs in tags for a, _ in attrs if a.startswith("on")]
    assert not [t for t, attrs in tags if t == "img" and dict(attrs).get("src") == "x"]


def test_junit_parses_and_keeps_the_name(hostile: ReportFile) -> None:
    import xml.etree.ElementTree as ET

    from normreg.render.junit import render_junit

    root = ET.fromstring(render_junit(hostile.report).encode("utf-8"))
    names = [c.get("name") for c in root.iter("testcase")]
    assert any(xml_text(HOSTILE) in n for n in names)
    messages = [e.get("message") or "" for e in root.iter()]
    assert any("\\x01\\x08\\x1b[2J" in m for m in messages)  # the crashed run's message, control characters written out


def test_html_escapes_every_name_and_draws_math_syntax_as_text(hostile: ReportFile) -> None:
    from normreg.render.html import render_html

    page = render_html(hostile.report)  # the figures hold the names too, as SVG text
    _assert_inert(page)
    assert "<svg" in page and "<script" not in page
    assert html_text(HOSTILE) in page and "\x01" not in page and "\x1b" not in page


def test_markdown_escapes_html_emphasis_math_and_table_breaks(hostile: ReportFile) -> None:
    from markdown_it import MarkdownIt

    from normreg.render.markdown import render_markdown

    text = render_markdown(hostile.report)
    assert "<script" not in text.lower() and "<img" not in text.lower() and "\x01" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows and all(len(re.findall(r"(?<!\\)\|", r)) == 10 for r in rows)  # no name breaks its row
    page = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough").render(text)
    _assert_inert(page)
    tags = {t for t, _ in _tags(page)}
    assert not tags & {"em", "a", "s", "del"}  # the name's syntax shows as typed (bold and code are normreg's own)
    for typed in ("cost$x^$", "*bold* _em_ `code` [link](http://x) | ~~s~~", "&amp;amp;", "&lt;script&gt;"):
        assert typed in page, typed


def test_terminal_writes_control_characters_out(hostile: ReportFile) -> None:
    from normreg.render.terminal import render

    out = render(hostile.report)
    assert "\x1b" not in out and "\x01" not in out and "\\x1b[2J" in out


def test_history_html_draws_hostile_names(hostile: ReportFile) -> None:
    from normreg.render.html import render_history_html
    from normreg.report.history import build_history

    _assert_inert(render_history_html(build_history([hostile])))


@pytest.mark.parametrize("text,markdown", [
    ("test_acc", "test_acc"), ("_x_", "\\_x\\_"), ("p < 0.05", "p < 0.05"), ("a<b>", "a&lt;b>"),
    ("a &amp; b & c", "a &amp;amp; b & c"), ("cost$x^$", "cost\\$x^\\$"), ("a|b", "a\\|b"), ("x\x00y", "x\\\\x00y"),
])
def test_markdown_text(text: str, markdown: str) -> None:
    assert markdown_text(text) == markdown


def test_plain_keeps_newlines_and_tabs() -> None:
    assert plain("a\tb\nc\x1b[0m\x7f") == "a\tb\nc\\x1b[0m\\x7f"
    assert xml_text("a\tb\x00\ufffe") == "a\tb\\x00\\ufffe"


def test_no_script_runs_in_a_browser(hostile: ReportFile, tmp_path: Path) -> None:
    from normreg.render.html import render_html
    from tests.render.test_html import browse

    page = tmp_path / "hostile.html"
    page.write_text(render_html(hostile.report), encoding="utf-8")
    proc = browse(tmp_path, page, "--dump-dom", "--virtual-time-budget=5000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", proc.stdout, flags=re.S)
    assert title and "pwned" not in title.group(1)
    assert "<script" not in proc.stdout
