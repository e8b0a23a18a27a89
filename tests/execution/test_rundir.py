"""Run directories: one process owns one directory, names never collide, nothing is mixed or replaced, and an
interrupted run is resumed without training a finished run twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from normreg.errors import InputError
from normreg.execution.rundir import LOCK_NAME, RunDir, content_changes, new_run_dir, read_runs
from tests.conftest import REGRESSION, SAME

ROOT = Path(__file__).resolve().parents[2]
FAKE_CLI = Path(__file__).parents[1] / "fake_cli.py"
TINY = Path(__file__).parents[1] / "data" / "suites" / "tiny.yaml"


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NORMREG_FAKE_DELAY": "0.2", **extra}
    env.pop("NORMREG_FAKE_LOG", None)
    env.update(extra)
    return env


def _fake(*args: object, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(FAKE_CLI), *map(str, args)], cwd=cwd, env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ------------------------------------------------------------------------------------------- one writer


def test_a_second_process_writing_the_same_out_is_refused(write_suite, tmp_path: Path) -> None:
    suite, out = write_suite(seeds=8), tmp_path / "run"
    gate, log = tmp_path / "gate", tmp_path / "trained.txt"
    first = _fake("run", suite, "--out", out, "--baselines", tmp_path / "b", cwd=tmp_path,
                  NORMREG_FAKE_GATE=str(gate), NORMREG_FAKE_LOG=str(log), NORMREG_FAKE_DELAY="0")
    try:
        _wait_for(lambda: log.exists() or first.poll() is not None)  # the first run is training
        assert first.poll() is None, first.communicate()
        second = _fake("run", suite, "--out", out, "--baselines", tmp_path / "b", cwd=tmp_path)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.strip().splitlines() == [
            f"InputError: {out} is in use by another normreg run (pid {first.pid}); wait for it to finish or give "
            "another --out"]
    finally:
        gate.touch()
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    rows = [line.split(",")[1:4] for line in _lines(out / "pair" / "results.csv")[1:]]
    assert len(rows) == 8 * 2 * 2 and len({tuple(r) for r in rows}) == len(rows)  # no run twice, nothing mixed


def test_the_lock_is_held_until_closed(tmp_path: Path) -> None:
    with RunDir.open(tmp_path / "r") as held:
        assert (held.path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(InputError, match=r"is in use by another normreg run \(pid \d+\)"):
            RunDir.open(tmp_path / "r")
    RunDir.open(tmp_path / "r").close()  # released


def test_default_names_are_unique_when_runs_start_in_the_same_second(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 28, 3, 17, 0)
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: new_run_dir(tmp_path / "runs", now=now), range(16)))
    assert len(set(made)) == 16 and all(p.is_dir() for p in made)
    assert sorted(p.name for p in made)[:2] == ["20261128-031700", "20261128-031700-10"]


def test_two_processes_without_out_get_two_directories(write_suite, tmp_path: Path) -> None:
    suite = write_suite(seeds=2)
    procs = [_fake("run", suite, "--baselines", tmp_path / "b", cwd=tmp_path, NORMREG_FAKE_DELAY="0")
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    dirs = [line.split(": ", 1)[1] for o, _ in outs for line in o.splitlines() if line.startswith("Run directory")]
    assert len(set(dirs)) == 3
    for d in dirs:
        assert len(_lines(tmp_path / d / "pair" / "results.csv")) == 1 + 2 * 2 * 2


def test_another_suite_never_replaces_the_report_of_an_earlier_run(cli, write_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("run", write_suite(), "--out", out, "--baselines", tmp_path / "b", script=SAME).exit_code == 0
    before = (out / "report.json").read_text()
    res = cli("run", write_suite(name="other"), "--out", out, "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 2
    assert res.output.startswith(f"InputError: {out} already holds the results of an earlier run (report.json, "
                                 "pair/); give another --out")
    assert (out / "report.json").read_text() == before and not (out / "other").exists()


def test_an_out_that_is_a_file_is_one_line(cli, write_suite, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = cli("run", write_suite(), "--out", tmp_path / "f", "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        f"InputError: --out {tmp_path / 'f'}: is a file, not a folder; give a folder"]


def test_an_empty_directory_or_a_failed_start_does_not_block_a_run(cli, write_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "pair").mkdir()
    (out / "pair" / "results.csv").write_text("suite,variant,seed,metric,value,status,duration_s,error\n")
    assert cli("run", write_suite(), "--out", out, "--baselines", tmp_path / "b", script=SAME).exit_code == 0


# ------------------------------------------------------------------------------------------------ resume


def _values(report_path: Path) -> dict[tuple[str, int], dict[str, float]]:
    runs = json.loads(report_path.read_text())["runs"]
    return {(r["variant"], r["seed"]): r["metrics"] for r in runs if r["status"] == "ok"}


def test_resume_reuses_finished_runs_and_reruns_failed_ones(cli, write_suite, tmp_path: Path, monkeypatch) -> None:
    from normreg import cli as cli_module
    from normreg.execution.fake import FakeRunner

    suite, out = write_suite(), tmp_path / "run"
    flaky = {"merged": REGRESSION["merged"],
             "twin": {"acc": [0.937, RuntimeError("flaky"), 0.952, 0.930, 0.941], "loss": REGRESSION["twin"]["loss"]}}
    res = cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=flaky)
    assert res.exit_code == 3
    again = FakeRunner(REGRESSION)
    monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: again)
    res = cli("run", suite, "--resume", out, "--baselines", tmp_path / "b")
    assert res.exit_code == 1, res.output  # the regression, now judged on all ten runs
    assert [(j.variant, j.seed) for j in again.jobs] == [("twin", 1)]  # nothing finished ran twice
    assert f"Resuming {out}: 9 finished runs reused" in res.output
    report = json.loads((out / "report.json").read_text())
    assert len(report["runs"]) == 10 and all(r["status"] == "ok" for r in report["runs"])
    rows = _lines(out / "pair" / "results.csv")[1:]
    assert len(rows) == 20 and len({tuple(r.split(",")[1:4]) for r in rows}) == 20  # one row per run and metric
    assert len(read_runs(out / "pair" / "runs.jsonl")) == 10


def test_resume_of_a_changed_suite_names_what_changed(cli, write_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("run", write_suite(), "--out", out, "--baselines", tmp_path / "b", script=SAME)
    before = (out / "pair" / "results.csv").read_text()
    changed = write_suite(extra="stats: {alpha: 0.01}")
    res = cli("run", changed, "--resume", out, "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"SuiteError: suite 'pair' ({changed}) changed since the run in {out / 'pair'} was started "
        '(stats: (none) -> {"alpha": 0.01}); restore it (with the same --set options) to resume, or start a new '
        "run without --resume"]
    assert (out / "pair" / "results.csv").read_text() == before


def test_resume_notes_a_changed_environment(cli, write_suite, tmp_path: Path) -> None:
    suite, out = write_suite(), tmp_path / "run"
    cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=SAME)
    meta = json.loads((out / "pair" / "run.json").read_text())
    meta["environment"]["torch"] = "1.0.0"
    (out / "pair" / "run.json").write_text(json.dumps(meta))
    res = cli("run", suite, "--resume", out, "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 0
    assert "Note: pair: the environment changed since the interrupted run (torch 1.0.0 -> " in res.output


@pytest.mark.parametrize("args, message", [
    (("--resume", "missing"), "InputError: --resume missing: no such run directory"),
    (("--resume", "empty"), "InputError: --resume empty: not a run directory (no <suite>/run.json in it)"),
    (("--resume", "run", "--out", "elsewhere"), "--out elsewhere and --resume run name two directories"),
])
def test_resume_bad_directories(cli, write_suite, tmp_path: Path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    res = cli("run", write_suite(), *args, "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_resume_names_every_suite_of_the_interrupted_run(cli, write_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first, second = write_suite(), write_suite(name="other")
    cli("run", first, second, "--out", out, "--baselines", tmp_path / "b", script=SAME)
    res = cli("run", first, "--resume", out, "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 2 and "also holds suite(s) other of the interrupted run" in res.output


def test_content_changes_lists_each_path() -> None:
    assert content_changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == [
        "a.c: 2 -> 3", "a.d: (none) -> 4"]


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    good = {"suite": "s", "variant": "a", "seed": 0, "status": "ok", "metrics": {"acc": 0.5}}
    path.write_text(json.dumps(good) + "\n" + '{"suite": "s", "var')
    assert [r.metrics["acc"] for r in read_runs(path)] == [0.5]


def test_kill_9_mid_run_then_resume_trains_each_run_once(write_suite, tmp_path: Path) -> None:
    """The parent is killed with SIGKILL mid-run; `--resume` trains only what was not finished."""
    suite, out, log = write_suite(seeds=6), tmp_path / "run", tmp_path / "trained.txt"
    proc = _fake("run", suite, "--out", out, "--baselines", tmp_path / "b", cwd=tmp_path, NORMREG_FAKE_LOG=str(log))
    _wait_for(lambda: len(_lines(out / "pair" / "runs.jsonl")) >= 5 or proc.poll() is not None)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    finished = {(r.variant, r.seed) for r in read_runs(out / "pair" / "runs.jsonl")}
    assert 5 <= len(finished) < 12 and not (out / "report.json").exists()
    before = len(_lines(log))
    resumed = _fake("run", suite, "--resume", out, "--baselines", tmp_path / "b", cwd=tmp_path,
                    NORMREG_FAKE_LOG=str(log))
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    trained = [(v, int(s)) for v, s in (line.split(",") for line in _lines(log)[before:])]
    assert len(trained) == len(set(trained)) and not finished & set(trained)  # nothing finished ran again
    assert finished | set(trained) == {(v, s) for v in ("merged", "twin") for s in range(6)}
    uninterrupted = tmp_path / "whole"
    whole = _fake("run", suite, "--out", uninterrupted, "--baselines", tmp_path / "b", cwd=tmp_path,
                  NORMREG_FAKE_DELAY="0")
    assert whole.wait(timeout=120) == 0
    assert _values(out / "report.json") == _values(uninterrupted / "report.json")


@pytest.mark.slow
def test_kill_9_of_a_real_run_then_resume_gives_the_uninterrupted_values(tmp_path: Path, local_executor) -> None:
    """Real Lightning training (in the process, so SIGKILL ends the training too), killed after two runs.
    Slow: three starts of torch and Lightning (about 40 s on an idle 2-core machine)."""
    from normreg.pipeline import run_suites

    out = tmp_path / "run"
    args = [sys.executable, "-m", "normreg.cli", "run", str(TINY), "--workers", "0", "--seeds", "3",
            "--baselines", str(tmp_path / "b")]
    proc = subprocess.Popen([*args, "--out", str(out)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(_lines(out / "tiny" / "runs.jsonl")) >= 2 or proc.poll() is not None, timeout=300)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    before = {(r.variant, r.seed): r for r in read_runs(out / "tiny" / "runs.jsonl")}
    assert 2 <= len(before) < 9
    resumed = subprocess.run([*args, "--resume", str(out)], cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 3, resumed.stderr  # the broken variant fails, as it did uninterrupted
    kept = sum(1 for r in before.values() if r.ok)
    assert len([line for line in resumed.stderr.splitlines() if line.startswith("[")]) == 9 - kept
    after = {(r.variant, r.seed): r for r in read_runs(out / "tiny" / "runs.jsonl")}
    assert all(after[k] == r for k, r in before.items() if r.ok)  # reused as they were, durations included
    whole = run_suites([TINY], seeds=3, executor=local_executor(workers=0), out=tmp_path / "whole",
                       baselines=tmp_path / "b")
    assert _values(out / "report.json") == {(r.variant, r.seed): dict(r.metrics) for r in whole.runs if r.ok}


def test_the_resume_command_printed_after_an_interrupt_finishes_the_run(cli, write_suite, tmp_path: Path,
                                                                        monkeypatch) -> None:
    """SIGINT during the fourth of 10 runs, then the printed `--resume` command: the other 6 are trained."""
    import shlex

    from normreg import cli as cli_module
    from normreg.execution.fake import FakeRunner

    def interrupted(variant: str, seed: int) -> dict[str, float]:
        if (variant, seed) == ("twin", 1):
            os.kill(os.getpid(), signal.SIGINT)
        return {"acc": 0.9 + 0.01 * seed, "loss": 0.3}

    suite, out = write_suite(), tmp_path / "run"
    monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: FakeRunner(interrupted))
    monkeypatch.setattr("sys.argv", ["normreg", "run", str(suite), "--out", str(out), "--baselines",
                                     str(tmp_path / "b")])
    res = cli("run", suite, "--out", out, "--baselines", tmp_path / "b")
    assert res.exit_code == 130
    command = shlex.split(res.output.strip().splitlines()[-1].removeprefix("Continue with: "))
    assert command[:2] == ["normreg", "run"] and command[-2:] == ["--resume", str(out)]
    kept = read_runs(out / "pair" / "runs.jsonl")
    again = FakeRunner(lambda variant, seed: {"acc": 0.9 + 0.01 * seed, "loss": 0.3})
    monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: again)
    res = cli(*command[1:])
    assert res.exit_code == 0, res.output
    assert len(kept) + len(again.jobs) == 10 and not {(r.variant, r.seed) for r in kept} & {
        (j.variant, j.seed) for j in again.jobs}
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 10


def test_a_results_table_is_read_only_as_far_as_its_first_row(tmp_path: Path) -> None:
    from normreg.execution.rundir import has_results

    run = tmp_path / "run"
    (run / "s").mkdir(parents=True)
    (run / "s" / "results.csv").write_bytes(b"variant,seed,metric,value\n\n")
    assert not has_results(run)  # a header alone: a run that never trained
    # a row, then bytes a whole read would refuse (not UTF-8): the row is enough, what follows is never read
    (run / "s" / "results.csv").write_bytes(b"variant,seed,metric,value\na,0,loss,1.0\n" + b"\xff" * 100)
    assert has_results(run)


def test_a_working_process_that_died_beside_an_unreadable_results_table_keeps_the_directory_and_says_why(
        tmp_path: Path) -> None:
    from normreg.execution.supervisor import _left_run_dir

    run = tmp_path / "run"
    (run / "s").mkdir(parents=True)
    os.mkfifo(run / "s" / "results.csv")
    said = _left_run_dir(run, created=True)  # a ResultsError here was a traceback in the first process
    assert said == f"; the run directory {run} was kept: {run / 's' / 'results.csv'}: is a named pipe (FIFO), " \
                   "not a regular file; give a run directory's results.csv"
    assert run.is_dir()
    (run / "s" / "results.csv").unlink()
    assert _left_run_dir(run, created=False) == "" and run.is_dir()  # nothing trained, not ours: left alone
    assert _left_run_dir(run, created=True) == "" and not run.exists()  # nothing trained, ours: removed
