"""Renderings of a report: terminal, HTML, Markdown, JUnit XML, figures."""
