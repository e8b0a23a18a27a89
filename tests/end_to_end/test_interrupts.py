"""Faults on a real run with real worker processes: signals to the parent, `kill -9` of the parent or of a worker.

Each test starts `normreg run` in its own session with a tag in its environment, which every process it starts
inherits; `ps` and each process's environment then find them all, so a process left behind is seen.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.processes import new_tag, none_left, tagged, wait_for

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml"
# Two identical variants, runs long enough (a second or more each) to be caught in flight.
SLOW = ["--set", "variants={a: {model: tiny_models:Classifier}, b: {model: tiny_models:Classifier}}",
        "--set", "trainer.max_epochs=15", "--set", "data.args.n=1024", "--seeds", "4"]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses ps and Linux signals")


def _start(tmp_path: Path, workers: int = 2, output: Any = subprocess.PIPE) -> tuple[subprocess.Popen[str], str, Path]:
    name, value = new_tag()
    tag = f"{name}={value}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), name: value}
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "normreg.cli", "run", str(TINY), "--workers", str(workers),
                             "--out", str(out), *SLOW], env=env, cwd=tmp_path, stdout=output,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, tag, out


def _workers(proc: subprocess.Popen[str], tag: str) -> list[int]:
    """The worker processes: children of the fork server, itself a child of normreg's working process (the child
    of the process started, which only supervises it)."""
    procs = tagged(tag)
    normreg = {proc.pid} | {pid for pid, ppid, _ in procs if ppid == proc.pid}
    servers = {pid for pid, ppid, cmd in procs if ppid in normreg and "forkserver" in cmd}
    return [pid for pid, ppid, _ in procs if ppid in servers]


def _rows(out: Path) -> list[dict[str, str]]:
    path = out / "tiny" / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _training(proc: subprocess.Popen[str], tag: str, out: Path, finished: int) -> None:
    """Wait until both workers are up and `finished` runs are on disk (the next ones then in flight)."""

    def state() -> str:
        return f"exit code {proc.poll()}, {len(_rows(out))} rows, processes {tagged(tag)}"

    wait_for(lambda: len(_workers(proc, tag)) == 2 or proc.poll() is not None, "two workers")
    wait_for(lambda: len(_rows(out)) >= finished or proc.poll() is not None, f"{finished} runs")
    assert proc.poll() is None and len(_workers(proc, tag)) == 2, state()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_parent_stops_everything_and_keeps_what_finished(tmp_path: Path, sig: int,
                                                                         code: int) -> None:
    proc, tag, out = _start(tmp_path)
    try:
        _training(proc, tag, out, finished=1)
        os.kill(proc.pid, sig)  # the parent alone, as `kill` or a job scheduler would
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("Continue with: normreg run ") and last.endswith(f"--resume {out}"), output
    rows = _rows(out)
    jsonl = (out / "tiny" / "runs.jsonl").read_text().splitlines()
    assert 1 <= len(rows) == len(jsonl) < 8 and all(r["status"] == "ok" for r in rows)
    assert len({(r["variant"], r["seed"]) for r in rows}) == len(rows)  # each finished run recorded once
    none_left(tag)


def test_kill_9_of_the_parent_leaves_no_worker_behind(tmp_path: Path) -> None:
    proc, tag, out = _start(tmp_path)
    try:
        _training(proc, tag, out, finished=0)
        assert len(tagged(tag)) >= 4  # the parent, the fork server, two workers (and the resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        none_left(tag)
    finally:
        for pid, _, _ in tagged(tag):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_fails_only_its_own_run_and_nothing_outlives_normreg(tmp_path: Path) -> None:
    with open(tmp_path / "output.txt", "w") as log:  # not a pipe: the test sees the moment normreg itself exits
        proc, tag, out = _start(tmp_path, output=log)
        try:
            _training(proc, tag, out, finished=0)
            os.kill(_workers(proc, tag)[0], signal.SIGKILL)
            proc.wait(timeout=300)
            # Nothing normreg started lingers after it (the fork server, which has torch to tear down, used to
            # hold normreg's stdout open for 2 to 3 s more, and every reader of the output waited for it).
            none_left(tag, within=1.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    output = (tmp_path / "output.txt").read_text()
    assert proc.returncode == 3, output  # a failed run
    rows = _rows(out)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(rows) == 8 and len(failed) == 1, rows  # every run reported once; the neighbour's run went on
    assert failed[0]["error"].startswith("WorkerDied: the worker process running this run ended abruptly "
                                         "(killed by SIGKILL")
