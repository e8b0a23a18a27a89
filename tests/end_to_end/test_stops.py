"""How a run ends when it does not end normally: user code that ends or crashes the process, signals in every
phase, a run past its time limit, a reader that went away. Real `normreg` processes, small models written here.

Each test starts `python -m normreg.cli` (the console script's path: the supervised pair of processes) with a tag
in its environment, which every process it starts inherits, so a process left behind is seen.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.processes import new_tag, none_left, tagged, wait_for

ROOT = Path(__file__).resolve().parents[2]
SUITES = Path(__file__).parents[1] / "data" / "suites"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc, ps and Linux signals")

# User code that ends the process its way: at import, in __init__ (the up-front check builds it), in a run.
FAULTS = '''
import ctypes
import os
import time

from tiny_models import Classifier

HOW = os.environ.get("FAULT_HOW", "")
WHERE = os.environ.get("FAULT_WHERE", "")


def fault(where):
    if WHERE != where:
        return
    if HOW == "os_exit":
        os._exit(0)
    if HOW == "segfault":
        ctypes.string_at(0)
    if HOW == "keyboard":
        raise KeyboardInterrupt
    if HOW == "sleep":
        open("sleeping", "w").close()
        time.sleep(3600)
    if HOW == "fork":  # a child that outlives its run, holding every descriptor its parent had
        if os.fork() == 0:
            time.sleep(3600)
            os._exit(0)


fault("import")


class Faulty(Classifier):
    def __init__(self):
        super().__init__()
        fault("init")

    def training_step(self, batch, batch_idx):
        fault("train")
        return super().training_step(batch, batch_idx)
'''


def _suite(tmp_path: Path, extra: str = "", variants: str = "b: {model: faults:Faulty}") -> Path:
    shutil.copy(SUITES / "tiny_models.py", tmp_path / "tiny_models.py")
    (tmp_path / "faults.py").write_text(FAULTS)
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: s
        data: {{target: tiny_models:Blobs, args: {{n: 64, batch_size: 32}}}}
        trainer: {{max_epochs: 1}}
        seeds: 1
        metrics: {{acc: {{goal: max, min_effect: 0.05}}}}
        reference: a
        variants:
          a: {{model: tiny_models:Classifier}}
          {variants}
        """) + extra)
    return path


def _start(tmp_path: Path, *args: object, env: dict[str, str] | None = None,
           **popen: object) -> tuple[subprocess.Popen[str], str]:
    name, value = new_tag()
    full = {**os.environ, "PYTHONPATH": str(ROOT), name: value, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "normreg.cli", *map(str, args)], env=full, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **popen)  # type: ignore[call-overload]
    return proc, f"{name}={value}"


def _finish(proc: subprocess.Popen[str], tag: str, timeout: float = 240) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    none_left(tag, within=5)
    return output


# ------------------------------------------------------------------------ user code that ends the process


SLOW = pytest.mark.slow  # each case imports torch in a process of its own: one case of each kind runs by default


@pytest.mark.parametrize("how, where", [
    pytest.param("os_exit", "import", marks=SLOW), ("os_exit", "init"), pytest.param("os_exit", "train", marks=SLOW),
    pytest.param("segfault", "init", marks=SLOW), pytest.param("segfault", "train", marks=SLOW)])
def test_user_code_ending_the_process_is_a_failed_run_never_a_pass(tmp_path: Path, how: str, where: str) -> None:
    # --workers 0: the up-front check and the runs in normreg's own process (with workers, only the check is)
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "0", "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": how, "FAULT_WHERE": where})
    output = _finish(proc, tag)
    assert proc.returncode == 3, output
    lines = output.strip().splitlines()
    line = lines[-2] if lines[-1].startswith("Continue with: ") else lines[-1]
    assert line.startswith("RunError: normreg's working process ended abruptly during "), output
    assert ("killed by SIGSEGV: a crash in native code" if how == "segfault" else
            "exit code 0 without finishing: code it ran called os._exit") in line
    runs = list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else []
    if where == "train":  # run a finished first: it is kept, and said where
        assert "during run b seed 0 of suite 's', trained in normreg's own process (--workers 0)" in line, line
        assert len(runs) == 1, runs
        assert line.endswith(f"the run failed; finished runs are in {runs[0].relative_to(tmp_path)}"), line
    else:  # nothing trained: no run directory left
        assert "during the up-front check of suite 's'" in line and line.endswith("the run failed"), line
        assert runs == []


@pytest.mark.parametrize("where", [pytest.param("import", marks=SLOW), "init"])
def test_keyboard_interrupt_raised_by_user_code_is_a_failed_run(tmp_path: Path, where: str) -> None:
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": "keyboard", "FAULT_WHERE": where})
    output = _finish(proc, tag)
    assert proc.returncode == 3, output
    assert output.strip().splitlines() == [
        "RunError: user code raised KeyboardInterrupt (at faults.py:20 in fault) outside "
        "a training run; normreg did not finish"], output
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------------------------ stops in every phase


def _stop(proc: subprocess.Popen[str], sig: int) -> None:
    """Ctrl-C reaches the whole process group; `kill` (SIGTERM) only the process named."""
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)


def test_a_stop_during_the_up_front_check_leaves_nothing(tmp_path: Path) -> None:
    # workers: the fork server is importing torch meanwhile, and gets the Ctrl-C too (SIGTERM in this phase:
    # test_a_background_job_with_sigint_ignored_stops_on_sigterm)
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "2", "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": "sleep", "FAULT_WHERE": "init"})
    wait_for(lambda: (tmp_path / "sleeping").exists() or proc.poll() is not None, "the up-front check")
    _stop(proc, signal.SIGINT)
    output = _finish(proc, tag)
    assert proc.returncode == 130, output
    assert output.strip().splitlines() == [
        "Interrupted: stopped by SIGINT before any run finished; nothing was kept"], output
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, marks=SLOW), signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_in_a_run_in_this_process_stops_it_and_keeps_what_finished(tmp_path: Path, sig: int) -> None:
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "0", "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": "sleep", "FAULT_WHERE": "train"})
    wait_for(lambda: (tmp_path / "sleeping").exists() or proc.poll() is not None, "run b")
    _stop(proc, sig)
    output = _finish(proc, tag)
    assert proc.returncode == 128 + sig, output
    (run,) = (tmp_path / "runs").iterdir()
    assert output.strip().splitlines()[-2:] == [
        f"Interrupted: stopped by {signal.Signals(sig).name}; finished runs are in {run.relative_to(tmp_path)}",
        f"Continue with: normreg run {tmp_path / 's.yaml'} --workers 0 --baselines {tmp_path / 'b'} --resume "
        f"{run.relative_to(tmp_path)}"], output
    assert "Traceback" not in output
    assert (run / "s" / "runs.jsonl").read_text().count("\n") == 1  # run a, finished before the stop


@SLOW
def test_a_background_job_with_sigint_ignored_stops_on_sigterm(tmp_path: Path) -> None:
    # A non-interactive shell starts `normreg run ... &` with SIGINT ignored; it stays ignored, SIGTERM stops it,
    # in the up-front check, while the fork server imports torch, leaving nothing
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "2", "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": "sleep", "FAULT_WHERE": "init"},
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for(lambda: (tmp_path / "sleeping").exists() or proc.poll() is not None, "the up-front check")
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGTERM)
    output = _finish(proc, tag)
    assert proc.returncode == 143, output
    assert output.strip().splitlines() == [
        "Interrupted: stopped by SIGTERM before any run finished; nothing was kept"], output
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


# ---------------------------------------------------------------------------------------- a time limit per run


@SLOW
def test_a_run_past_the_time_limit_is_ended_and_failed_while_the_others_go_on(tmp_path: Path) -> None:
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "2", "--baselines", tmp_path / "b",
                       "--run-timeout", "10s", "--out", tmp_path / "run", "--report", tmp_path / "r.json",
                       env={"FAULT_HOW": "sleep", "FAULT_WHERE": "train"})
    output = _finish(proc, tag)
    assert proc.returncode == 3, output
    runs = {r["variant"]: r for r in json.loads((tmp_path / "r.json").read_text())["runs"]}
    assert runs["a"]["status"] == "ok"
    assert runs["b"]["status"] == "failed" and runs["b"]["error"] == (
        "TimedOut: timed out after 10 s (run_timeout); the run was ended and the other runs went on")
    assert 10 <= runs["b"]["duration_s"] < 60


def test_the_suite_time_limit_ends_a_run_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg.execution.executors.local import LocalExecutor, LocalOptions
    from normreg.pipeline import run_suites

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAULT_HOW", "sleep")
    monkeypatch.setenv("FAULT_WHERE", "train")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = _suite(tmp_path, extra="run_timeout: 3s\n")
    start = time.monotonic()
    try:
        with LocalExecutor(LocalOptions(workers=0)) as executor:
            report = run_suites([suite], executor=executor, out=tmp_path / "run", baselines=tmp_path / "b")
    finally:  # this test's copies of the user modules, not a later test's
        for name in ("faults", "tiny_models"):
            if str(getattr(sys.modules.get(name), "__file__", "")).startswith(str(tmp_path)):
                del sys.modules[name]
    assert time.monotonic() - start < 60
    runs = {r.variant: r for r in report.runs}
    assert runs["a"].ok and not runs["b"].ok
    assert runs["b"].error == ("TimedOut: timed out after 3 s (run_timeout); the run was ended and the other runs "
                               "went on")
    assert report.exit_code == 3


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_a_bad_time_limit_is_refused(cli, tmp_path: Path, value: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("run", _suite(tmp_path), "--run-timeout", value, "--baselines", tmp_path / "b", script={})
    assert res.exit_code == 2, res.output
    assert res.output.startswith("InputError: --run-timeout: expected a duration: seconds (e.g. 600) or a number "
                                 "with s, m or h (e.g. 30m)"), res.output


# ------------------------------------------------------------------------------ readers gone, processes left


@pytest.mark.parametrize("where", ["/dev/full", "closed pipe"])
def test_stdout_that_cannot_be_written_is_the_readers_problem(tmp_path: Path, where: str) -> None:
    from tests.scripted import make_report

    (tmp_path / "r.json").write_text(json.dumps(make_report(tmp_path)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "normreg.cli", "report", str(tmp_path / "r.json")]
    if where == "/dev/full":
        with open("/dev/full", "w") as full:
            res = subprocess.run(cmd, env=env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        code, err = res.returncode, res.stderr
    else:
        read, write = os.pipe()
        os.close(read)  # the reader went away before anything was written (`normreg report r.json | true`)
        proc = subprocess.Popen(cmd, env=env, stdout=write, stderr=subprocess.PIPE, text=True)
        os.close(write)
        _, err = proc.communicate(timeout=120)
        code = proc.returncode
    assert (code, err) == (0, ""), err  # the command's own exit code, nothing said


@SLOW
def test_kill_9_during_the_up_front_check_leaves_no_fork_server(tmp_path: Path) -> None:
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "2", "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": "sleep", "FAULT_WHERE": "init"})
    try:
        wait_for(lambda: any("forkserver" in cmd for _, _, cmd in tagged(tag)), "the fork server")
        time.sleep(0.5)  # it is importing torch now (seconds)
        for pid, _, _ in tagged(tag):  # the supervisor and the working process, as an OOM killer or a user might
            if "forkserver" not in _cmd(pid) and "resource_tracker" not in _cmd(pid):
                os.kill(pid, signal.SIGKILL)
        none_left(tag, within=2)  # not when the server's import of torch is done: now
    finally:
        for pid, _, _ in tagged(tag):
            os.kill(pid, signal.SIGKILL)


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@SLOW
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_child_user_code_left_running_does_not_keep_normregs_processes(tmp_path: Path, workers: str) -> None:
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", workers, "--baselines", tmp_path / "b",
                       env={"FAULT_HOW": "fork", "FAULT_WHERE": "train"})
    output = _finish(proc, tag, timeout=240)  # none_left: the forked child too, and normreg's own helpers
    assert proc.returncode == 0, output


@SLOW
def test_a_stop_before_the_first_run_finished_leaves_no_run_directory(tmp_path: Path) -> None:
    proc, tag = _start(tmp_path, "run", _suite(tmp_path), "--workers", "2", "--baselines", tmp_path / "b",
                       "--set", "variants={a: {model: faults:Faulty}, b: {model: faults:Faulty}}",
                       env={"FAULT_HOW": "sleep", "FAULT_WHERE": "train"})
    wait_for(lambda: (tmp_path / "sleeping").exists() or proc.poll() is not None, "run b")
    os.kill(proc.pid, signal.SIGTERM)
    output = _finish(proc, tag)
    assert proc.returncode == 143, output
    assert output.strip().splitlines()[-1] == (
        "Interrupted: stopped by SIGTERM before any run finished; nothing was kept"), output
    assert list((tmp_path / "runs").iterdir()) == []
