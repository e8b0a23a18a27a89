"""Output formats: the files `run`, `report` and `history` write beside the terminal summary, each atomically.

A format is a class in its own file in normreg/render/formats/ that registers itself by name:

    @register("html")
    class Html(OutputFormat):
        suffix = ".html"
        describes = "the HTML report"
        ...

`FORMATS` (a `normreg.registry.Registry`) finds them; the command line makes one option per format from it
(`--html FILE.html` on `run` and `report`, and on `history` for a format that renders a history), so adding a
format is adding a file. The renderers are imported when a file is written, never to list the formats: the
command line lists them on every start.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from normreg.fileio import write_text_atomic
from normreg.registry import Registry

if TYPE_CHECKING:
    from normreg.report.history import History
    from normreg.report.model import Report


class OutputFormat(ABC):
    """One output format: what it is called, the file name ending it suggests, and how it renders a report (and,
    where it can, the history of many reports) as text."""

    name: ClassVar[str]  # the option: --NAME
    suffix: ClassVar[str]  # e.g. ".html", shown in the option's help as FILE.html
    describes: ClassVar[str]  # "the HTML report": the help reads "Write the HTML report here."
    history: ClassVar[str | None] = None  # "the history as an HTML page with plots"; None: no history form

    @abstractmethod
    def render_report(self, report: Report) -> str:
        """The report (of `run` or `compare`) in this format."""

    def render_history(self, history: History) -> str:
        """The history of many reports (`normreg history`) in this format; only where `history` is set."""
        raise NotImplementedError(f"the {self.name} format has no history form")


def _is_format(name: str, part: type[OutputFormat]) -> None:
    if not (isinstance(part, type) and issubclass(part, OutputFormat)):
        raise TypeError(f"expected an OutputFormat subclass for the output format {name!r}, got {part!r}")


# html, markdown, junit: the order the options have always had in the help; a new format comes after them
FORMATS: Registry[type[OutputFormat]] = Registry("output format", package="normreg.render.formats",
                                                 check=_is_format, order=("html", "markdown", "junit"))


def register(name: str) -> Callable[[type[OutputFormat]], type[OutputFormat]]:
    """Class decorator: make the format available as `--NAME` on the commands that write it."""
    return FORMATS.register(name)


def formats_for(what: str) -> tuple[type[OutputFormat], ...]:
    """The formats a command writes: every one for "report" (`run`, `report`), those with a history form for
    "history"."""
    if what not in ("report", "history"):
        raise ValueError(f"expected 'report' or 'history', got {what!r}")
    return tuple(f for f in FORMATS.parts() if what == "report" or f.history is not None)


def option_suffixes() -> dict[str, str]:
    """Each format's option and the file name ending it writes ({"--html": ".html", ...}), for the output-path
    checks of `normreg.fileio`, which sits below this registry."""
    return {f"--{f.name}": f.suffix for f in FORMATS.parts()}


def write_outputs(report: Report, outputs: Mapping[str, Path]) -> list[Path]:
    """Render and write each requested format ({format name: path}); returns the paths written, in that order."""
    for name, path in outputs.items():
        write_text_atomic(path, FORMATS.get(name)().render_report(report))
    return list(outputs.values())


def write_history_outputs(history: History, outputs: Mapping[str, Path]) -> list[Path]:
    """Render and write the history in each requested format ({format name: path}); returns the paths written."""
    for name, path in outputs.items():
        write_text_atomic(path, FORMATS.get(name)().render_history(history))
    return list(outputs.values())
