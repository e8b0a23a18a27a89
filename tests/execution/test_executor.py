"""The executor seam: the registry, fakes that say so, the pipeline's steps, interrupts (in process, scripted)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from normreg.errors import InputError, SuiteError
from normreg.execution.executor import Executor, Interrupted, Job, OnResult, OnStart, job_accelerator, make_executor
from normreg.execution.executors.local import LocalExecutor, LocalOptions
from normreg.execution.fake import FakeRunner
from normreg.pipeline import device_kind, run_suites
from normreg.suite.spec import load_suite
from tests.conftest import REGRESSION


def test_local_executor_is_registered_and_unknown_names_are_refused() -> None:
    with make_executor("local", LocalOptions(workers=0)) as ex:
        assert isinstance(ex, LocalExecutor) and isinstance(ex, Executor) and ex.trains
    with pytest.raises(InputError, match=r"unknown executor 'locl'\. Did you mean 'local'\? Available: .*local"):
        make_executor("locl")


def test_cli_rejects_an_unknown_executor_in_one_line(cli: Any, write_suite: Any) -> None:
    res = cli("run", write_suite(), "--executor", "nope")
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        res.output.strip().splitlines()[0]] and "unknown executor 'nope'" in res.output


def test_bad_accelerator_and_devices_are_usage_errors(cli: Any, write_suite: Any) -> None:
    res = cli("run", write_suite(), "--accelerator", "tpu")
    assert res.exit_code == 2
    assert "--accelerator: expected one of auto, cpu, gpu, but found a string ('tpu')" in res.output
    res = cli("run", write_suite(), "--devices", "0,x")
    assert res.exit_code == 2 and "expected --devices as GPU indices" in res.output


def test_a_fake_says_it_is_one(tmp_path: Path, write_suite: Any) -> None:
    report = run_suites([write_suite()], executor=FakeRunner(REGRESSION), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    assert {r.device for r in report.runs} == {"fake"}
    assert report.environment["device"] == "fake" and report.environment["devices"] == ["fake"]


class _ScriptedTrainer(FakeRunner):
    """A fake that claims to train, as a real executor does: the up-front checks must then run."""

    trains = True


def test_the_preflight_runs_for_any_executor_that_trains(tmp_path: Path, write_suite: Any) -> None:
    suite = write_suite(extra="data: {target: tiny_models:Blobz}\n")
    fake = _ScriptedTrainer(REGRESSION)
    with pytest.raises(SuiteError, match=r"pair\.yaml:\d+: data\.target: .*tiny_models"):
        run_suites([suite], executor=fake, out=tmp_path / "run", baselines=tmp_path / "b", audit=False)
    assert fake.jobs == []  # found before anything ran


def test_the_library_writes_the_run_directorys_report(tmp_path: Path, write_suite: Any) -> None:
    report = run_suites([write_suite()], executor=FakeRunner(REGRESSION), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report.to_json()))


def test_a_signal_during_execution_stops_the_run_and_keeps_finished_runs(tmp_path: Path, write_suite: Any) -> None:
    seen: list[tuple[str, int]] = []

    def script(variant: str, seed: int) -> dict[str, float]:
        seen.append((variant, seed))
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would, while the third run is in flight
        return {"acc": 0.9, "loss": 0.3}

    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or what an earlier test's Ray left behind
    with pytest.raises(Interrupted) as info:
        run_suites([write_suite(seeds=5)], executor=FakeRunner(script), out=tmp_path / "run",
                   baselines=tmp_path / "b")
    assert info.value.exit_code == 143 and info.value.run_dir == tmp_path / "run"
    rows = (tmp_path / "run" / "pair" / "results.csv").read_text().splitlines()
    assert len(seen) == 3 and len(rows) == 1 + 3 * 2  # header, then the three runs that finished (two metrics each)
    assert not (tmp_path / "run" / "report.json").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored


def test_cli_interrupt_exits_130_and_names_the_resume_command(cli: Any, write_suite: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg import cli as cli_module

    def script(variant: str, seed: int) -> dict[str, float]:
        if seed == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return {"acc": 0.9, "loss": 0.3}

    monkeypatch.setattr(cli_module, "make_executor", lambda *a, **k: FakeRunner(script))
    suite = write_suite()
    monkeypatch.setattr("sys.argv", ["normreg", "run", str(suite), "--out", str(tmp_path / "o"), "--seeds", "3"])
    res = cli("run", suite, "--out", tmp_path / "o", "--seeds", "3")
    assert res.exit_code == 130
    lines = res.output.strip().splitlines()
    assert lines[-2].startswith("Interrupted: stopped by SIGINT; finished runs are in ")
    assert lines[-1] == f"Continue with: normreg run {suite} --seeds 3 --resume {tmp_path / 'o'}"


def test_device_kind_drops_index_and_host() -> None:
    assert device_kind("cuda:3 (NVIDIA H200) on node-7") == "cuda (NVIDIA H200)"
    assert device_kind("cpu") == "cpu" and device_kind("cpu on node-2") == "cpu"


def test_a_variants_own_accelerator_wins(write_suite: Any) -> None:
    suite = load_suite(write_suite(extra="trainer: {max_epochs: 1}\n"),
                       ["variants.twin.trainer={accelerator: cpu}"])
    merged, twin = Job(suite, "merged", 0), Job(suite, "twin", 0)
    assert job_accelerator(merged, "auto", have_gpus=True) == "gpu"
    assert job_accelerator(twin, "auto", have_gpus=True) == "cpu"
    assert job_accelerator(merged, "cpu", have_gpus=True) == "cpu"
    assert job_accelerator(merged, "auto", have_gpus=False) == "cpu"


class _Recorder:
    """The smallest executor: records the calls the pipeline makes, runs every job through a fake."""

    name = "recorder"
    trains = False
    device = "fake"

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.fake = FakeRunner(REGRESSION)

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        self.batches.append(len(jobs))
        self.fake.run(jobs, on_result, on_start)

    def warm_up(self) -> None:
        pass

    def cancel(self) -> None:
        self.fake.cancel()

    def close(self) -> None:
        pass

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_any_object_keeping_the_protocol_is_an_executor(tmp_path: Path, write_suite: Any) -> None:
    ex = _Recorder()
    assert isinstance(ex, Executor)
    report = run_suites([write_suite(), write_suite(name="other")], executor=ex, out=tmp_path / "run",
                        baselines=tmp_path / "b")
    assert ex.batches == [20] and len(report.runs) == 20  # one call for every fixed-seed job of every suite


def test_a_suite_that_asks_for_the_cpu_keeps_the_cpu_baseline_whatever_the_executor(tmp_path: Path,
                                                                                       write_suite: Any) -> None:
    suite = write_suite(extra="trainer: {accelerator: cpu}\nbaseline_key: device\n")
    gpu = FakeRunner(REGRESSION, device="cuda (NVIDIA H200)")
    report = run_suites([suite], executor=gpu, out=tmp_path / "run", baselines=tmp_path / "b")
    assert "pair@cpu.json" in (report.suites[0].baseline_note or "")


def test_the_executor_warms_up_once_the_suites_load_and_before_the_targets_are_built(
        tmp_path: Path, write_suite: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr("normreg.auditing.preflight.preflight", lambda suite: calls.append(f"preflight {suite.name}"))

    class Warming(_Recorder):
        trains = True  # so the pipeline builds the targets first

        def warm_up(self) -> None:
            calls.append("warm_up")

    run_suites([write_suite(), write_suite(name="other")], executor=Warming(), out=tmp_path / "run",
               baselines=tmp_path / "b", audit=False)
    assert calls == ["warm_up", "preflight pair", "preflight other"]


def test_warm_up_starts_the_fork_server_and_close_ends_it_unused() -> None:
    """In a fresh interpreter (this one may hold a fork server already): the server warm_up started is gone as soon
    as close() returns, even while it is still importing torch, so a refused suite leaves nothing behind."""
    script = (
        "import os, time\n"
        "from normreg.execution.executors.local import LocalExecutor, LocalOptions, _forkserver_pid\n"
        "ex = LocalExecutor(LocalOptions(workers=2))\n"
        "ex.warm_up()\n"
        "pid = _forkserver_pid()\n"
        "os.kill(pid, 0)  # running\n"
        "ex.close()\n"
        "try:\n"
        "    os.kill(pid, 0)\n"
        "except ProcessLookupError:\n"
        "    print('stopped', pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and out.stdout.startswith("stopped "), out.stdout + out.stderr
