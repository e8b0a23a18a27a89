"""Markdown: the summary a CI job posts (a pull-request comment, a job summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normreg.render.outputs import OutputFormat, register

if TYPE_CHECKING:
    from normreg.report.history import History
    from normreg.report.model import Report


@register("markdown")
class Markdown(OutputFormat):
    suffix = ".md"
    describes = "the Markdown summary"
    history = "the changes found as Markdown"

    def render_report(self, report: Report) -> str:
        from normreg.render.markdown import render_markdown

        return render_markdown(report)

    def render_history(self, history: History) -> str:
        from normreg.render.markdown import render_history_markdown

        return render_history_markdown(history)
