"""Progress: the plain lines written in CI and to files, and the live block's content on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from normreg.execution.events import Progress
from normreg.execution.executor import Job
from normreg.execution.results import RunResult
from normreg.render.progress import LineDisplay, LiveDisplay, Tally, clock, progress_display, status
from normreg.suite.spec import load_suite

TINY = Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml"
SUITE = load_suite(TINY)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _events() -> list[tuple[float, Progress]]:
    """Two runs side by side, then a third: a finishes ok after 10 s, broken fails after 20 s."""
    a, b, broken = (Job(SUITE, v, 0) for v in ("a", "b", "broken"))
    ok = RunResult("tiny", "a", 0, "ok", {"acc": 0.9812}, 10.0)
    bad = RunResult("tiny", "broken", 0, "failed", {}, 20.0, "RuntimeError: broken on purpose")
    return [
        (0, Progress(None, 0, 6, 0.0, (a,), a)),
        (0, Progress(None, 0, 6, 0.0, (a, broken), broken)),
        (10, Progress(ok, 1, 6, 10.0, (broken,))),
        (10, Progress(None, 1, 6, 10.0, (broken, b), b)),
        (20, Progress(bad, 2, 6, 20.0, (b,))),
    ]


def test_not_a_terminal_gives_one_line_per_finished_run() -> None:
    out = io.StringIO()
    display = progress_display(out, env={})
    assert isinstance(display, LineDisplay)
    for _, p in _events():
        display(p)
    display.note("Resuming runs/x: 3 finished runs reused")
    display.close()
    assert out.getvalue().splitlines() == [
        "[1/6] tiny/a seed 0: ok acc=0.9812 (10.0s; elapsed 10s)",
        "[2/6] tiny/broken seed 0: FAILED RuntimeError: broken on purpose (20.0s; elapsed 20s)",
        "Resuming runs/x: 3 finished runs reused",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ci_gets_lines_even_on_a_terminal(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm")  # rich reads the terminal type from the process environment
    assert isinstance(progress_display(_Terminal(), env={"CI": "true", "TERM": "xterm"}), LineDisplay)
    live = progress_display(_Terminal(), env={"TERM": "xterm"})
    try:
        assert isinstance(live, LiveDisplay)
    finally:
        live.close()


def _text(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_live_block_shows_counts_eta_and_runs_in_flight() -> None:
    now = Clock()
    tally = Tally(now)
    for t, p in _events():
        now.t = 1000.0 + t
        tally.update(p)
    now.t = 1025.0
    text = _text(status(tally))
    # 4 runs left at a mean of 15 s, two side by side: 30 s at the last event, 5 s ago.
    assert "2/6 done, 1 failed, 1 running  elapsed 0:25  ETA 0:25" in text
    assert "running: tiny/b seed 0 (0:15)" in text
    assert "tiny/a" not in text and "broken" not in text  # finished runs leave the block


def test_the_live_display_prints_finished_runs_above_the_block() -> None:
    out = _Terminal()
    now = Clock()
    display = LiveDisplay(Console(file=out, force_terminal=True, width=120, color_system=None), now)
    for t, p in _events():
        now.t = 1000.0 + t
        display(p)
    assert "ETA" in _text(display.renderable())
    display.close()
    text = out.getvalue()
    assert "[1/6] tiny/a seed 0: ok acc=0.9812" in text and "[2/6] tiny/broken seed 0: FAILED" in text


def test_no_eta_before_a_run_finished_and_the_clock_format() -> None:
    tally = Tally(Clock())
    tally.update(_events()[0][1])
    assert tally.eta_s() is None and "ETA -" in _text(status(tally))
    assert [clock(s) for s in (0, 42, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]


def test_many_runs_in_flight_are_counted_not_listed() -> None:
    tally = Tally(Clock())
    jobs = tuple(Job(SUITE, "a", s) for s in range(12))
    tally.update(Progress(None, 0, 12, 0.0, jobs, jobs[-1]))
    text = _text(status(tally))
    assert text.count("running: ") == 8 and "... and 4 more" in text


def test_before_the_first_run_the_live_block_says_what_takes_the_time() -> None:
    now = Clock()
    tally = Tally(now)
    now.t = 1007.0
    shown = " ".join(_text(status(tally)).split())
    assert shown == ("checking the suites before training: importing torch and Lightning, building each model once "
                     "(elapsed 0:07)")
