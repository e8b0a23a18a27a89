"""HTML: one self-contained page (styles inline, figures as inline SVG, no scripts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normreg.render.outputs import OutputFormat, register

if TYPE_CHECKING:
    from normreg.report.history import History
    from normreg.report.model import Report


@register("html")
class Html(OutputFormat):
    suffix = ".html"
    describes = "the HTML report"
    history = "the history as an HTML page with plots"

    def render_report(self, report: Report) -> str:
        from normreg.render.html import render_html

        return render_html(report)

    def render_history(self, history: History) -> str:
        from normreg.render.html import render_history_html

        return render_history_html(history)
