"""JUnit XML: every comparison a test case, for CI systems that list tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normreg.render.outputs import OutputFormat, register

if TYPE_CHECKING:
    from normreg.report.model import Report


@register("junit")
class JUnit(OutputFormat):
    suffix = ".xml"
    describes = "JUnit XML"

    def render_report(self, report: Report) -> str:
        from normreg.render.junit import render_junit

        return render_junit(report)
