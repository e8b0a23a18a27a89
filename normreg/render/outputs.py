"""Writing a report's other formats (HTML, Markdown, JUnit XML) beside its JSON, each atomically."""

from __future__ import annotations

from pathlib import Path

from normreg.fileio import write_text_atomic
from normreg.report.model import Report


def write_outputs(report: Report, *, html: Path | None = None, markdown: Path | None = None,
                  junit: Path | None = None) -> list[Path]:
    """Render and write each requested format; returns the paths written, in the order given."""
    written = []
    if html is not None:
        from normreg.render.html import render_html

        write_text_atomic(html, render_html(report))
        written.append(html)
    if markdown is not None:
        from normreg.render.markdown import render_markdown

        write_text_atomic(markdown, render_markdown(report))
        written.append(markdown)
    if junit is not None:
        from normreg.render.junit import render_junit

        write_text_atomic(junit, render_junit(report))
        written.append(junit)
    return written
