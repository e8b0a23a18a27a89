"""Progress while suites train: a live display on a terminal, one line per finished run elsewhere.

On a terminal (and not in CI), rich's `Live` keeps a status block at the bottom: a bar, the done, failed and
running counts, the elapsed time, an ETA from the finished runs' durations, and the runs in flight with how long
each has run; each finished run is printed above it as a line. In CI or when stderr is not a terminal (a log file,
a pipe) only the lines are written, one per finished run, so logs stay plain text.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from normreg.execution.events import Progress
from normreg.execution.results import RunResult

SHOWN_IN_FLIGHT = 8  # more runs in flight than this are counted, not listed


def finished_line(p: Progress) -> str:
    """`[3/10] suite/variant seed 1: ok acc=0.9812, loss=0.3 (1.2s; elapsed 4s)`, or FAILED with the error."""
    r = p.result
    assert r is not None
    shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())[:3]) if r.ok else r.error
    return (f"[{p.done}/{p.total}] {r.suite}/{r.variant} seed {r.seed}: {'ok' if r.ok else 'FAILED'} {shown} "
            f"({r.duration_s:.1f}s; elapsed {p.elapsed_s:.0f}s)")


def traceback_block(p: Progress) -> str | None:
    """A failed run's full traceback, indented under its line (for --debug); None when it has none."""
    r = p.result
    if r is None or r.ok or not r.traceback:
        return None
    return "\n".join("    " + line for line in r.traceback.rstrip().splitlines())


def clock(seconds: float) -> str:
    """`0:42`, `12:05`, `1:02:03`."""
    s = max(0, int(round(seconds)))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Tally:
    """Counts, in-flight runs and an ETA from the events so far."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.started_at = now()
        self.done = self.failed = self.total = 0
        self.in_flight: dict[tuple[str, str, int], float] = {}  # (suite, variant, seed) -> when it started
        self.durations: list[float] = []
        self.parallel = 1  # the most runs seen in flight at once: how many run side by side
        self._eta: float | None = None
        self._eta_at = self.started_at

    def update(self, p: Progress) -> None:
        t = self.now()
        self.done, self.total = p.done, p.total
        if p.started is not None:
            self.in_flight[(p.started.suite.name, p.started.variant, p.started.seed)] = t
        if p.result is not None:
            r: RunResult = p.result
            self.in_flight.pop((r.suite, r.variant, r.seed), None)
            self.failed += not r.ok
            if r.duration_s > 0:
                self.durations.append(r.duration_s)
        keys = {(j.suite.name, j.variant, j.seed) for j in p.running}
        self.in_flight = {k: self.in_flight.get(k, t) for k in keys}
        self.parallel = max(self.parallel, len(self.in_flight))
        self._eta = self._estimate()
        self._eta_at = t

    def _estimate(self) -> float | None:
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return max(0, self.total - self.done) * mean / self.parallel

    def eta_s(self) -> float | None:
        """Seconds left: the remaining runs times the mean duration of the finished ones, divided among the runs
        that go side by side, counted down since the last event; None before any run finished."""
        if self._eta is None:
            return None
        return max(0.0, self._eta - (self.now() - self._eta_at))

    def elapsed_s(self) -> float:
        return self.now() - self.started_at


CHECKING = "checking the suites before training: importing torch and Lightning, building each model once"


def status(tally: Tally) -> RenderableType:
    """The live block: bar and counts, then the runs in flight; before the first run, what is being done."""
    if tally.total == 0:
        return Text(f"{CHECKING} (elapsed {clock(tally.elapsed_s())})", style="dim")
    eta = tally.eta_s()
    head = Table.grid(padding=(0, 1))
    head.add_column(width=20)
    head.add_column(no_wrap=True, overflow="ellipsis")
    counts = Text.assemble(
        (f"{tally.done}/{tally.total} done", "bold"), ", ",
        (f"{tally.failed} failed", "bold red" if tally.failed else ""), ", ",
        f"{len(tally.in_flight)} running", f"  elapsed {clock(tally.elapsed_s())}",
        f"  ETA {clock(eta)}" if eta is not None else "  ETA -")
    head.add_row(ProgressBar(total=max(tally.total, 1), completed=tally.done, width=20), counts)
    now = tally.now()
    lines = [Text(f"  running: {suite}/{variant} seed {seed} ({clock(now - since)})", style="dim")
             for (suite, variant, seed), since in sorted(tally.in_flight.items(), key=lambda kv: kv[1])]
    if len(lines) > SHOWN_IN_FLIGHT:
        lines = [*lines[:SHOWN_IN_FLIGHT], Text(f"  ... and {len(lines) - SHOWN_IN_FLIGHT} more", style="dim")]
    return Group(head, *lines)


class LineDisplay:
    """One line per finished run, for logs and CI; with `tracebacks`, a failed run's traceback below its line."""

    def __init__(self, stream: IO[str], tracebacks: bool = False) -> None:
        self.stream = stream
        self.tracebacks = tracebacks

    def __call__(self, p: Progress) -> None:
        if p.result is not None:
            block = traceback_block(p) if self.tracebacks else None
            self.stream.write(finished_line(p) + "\n" + (block + "\n" if block else ""))
            self.stream.flush()

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class LiveDisplay:
    """The live block at the bottom of the terminal, finished runs printed above it."""

    def __init__(self, console: Console, now: Callable[[], float] = time.monotonic,
                 tracebacks: bool = False) -> None:
        self.console = console
        self.tracebacks = tracebacks
        self.tally = Tally(now)
        self.live = Live(console=console, get_renderable=self.renderable, refresh_per_second=4, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def renderable(self) -> RenderableType:
        return status(self.tally)

    def __call__(self, p: Progress) -> None:
        self.tally.update(p)
        if p.result is not None:
            self.console.print(escape(finished_line(p)), style=None if p.result.ok else "red", highlight=False,
                               soft_wrap=True)
            block = traceback_block(p) if self.tracebacks else None
            if block:
                self.console.print(escape(block), highlight=False, soft_wrap=True)
        self.live.refresh()

    def note(self, text: str) -> None:
        self.console.print(escape(text), highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.live.stop()


class Display(Protocol):
    """What the CLI hands to the library as `progress`, plus notes and an end."""

    def __call__(self, p: Progress) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


def in_ci(env: Mapping[str, str]) -> bool:
    return env.get("CI", "").lower() not in ("", "0", "false", "no")


def progress_display(stream: IO[str] | None = None, env: Mapping[str, str] | None = None, *,
                     tracebacks: bool = False) -> Display:
    """A live display when `stream` (default stderr) is a terminal outside CI, else one line per finished run;
    `tracebacks` (--debug) prints each failed run's traceback under its line. Call `close()` when the run ends
    (the live block then disappears; the lines above it stay)."""
    stream = stream or sys.stderr
    env = os.environ if env is None else env
    console = Console(file=stream, stderr=stream is sys.stderr)
    if console.is_terminal and not console.is_dumb_terminal and not in_ci(env):
        return LiveDisplay(console, tracebacks=tracebacks)
    return LineDisplay(stream, tracebacks=tracebacks)
