"""`--executor slurm`: everything but sbatch itself, through submitit's local executor (the same pickling, task,
result files, cancelling and requeueing), with the fake runner's worker where training is not the point."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

submitit = pytest.importorskip("submitit")
cloudpickle = pytest.importorskip("cloudpickle")

from normreg.errors import InputError  # noqa: E402
from normreg.execution.executor import Job, cli_options, make_executor, options_from_cli, plan_jobs  # noqa: E402
from normreg.execution.executors.slurm import SlurmExecutor, SlurmOptions, parse_minutes  # noqa: E402
from normreg.execution.fake import FakeRunner  # noqa: E402
from normreg.suite.spec import load_suite  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers below travel to the job by value

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "tests" / "data" / "suites" / "tiny.yaml"


def _local(tmp_path: Path, **options: Any) -> SlurmOptions:
    return SlurmOptions(cluster="local", folder=str(tmp_path / "submitit"), **options)


def test_slurm_options_come_from_the_executor_and_reach_sbatch(tmp_path: Path, write_suite: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    flags = {o.flag for o in cli_options()}
    assert {"--slurm-partition", "--slurm-account", "--slurm-time", "--slurm-gpus-per-run", "--slurm-cpus-per-run",
            "--slurm-mem-gb", "--slurm-max-requeues", "--workers", "--ray-address", "--accelerator"} <= flags
    options = options_from_cli("slurm", {"slurm_partition": "gpu", "slurm_account": "ml", "slurm_time": "1h",
                                         "slurm_mem_gb": 16.0, "slurm_cpus_per_run": 4, "accelerator": "gpu"})
    assert isinstance(options, SlurmOptions) and options.time_min == 60 and options.partition == "gpu"
    with pytest.raises(InputError, match="--slurm-partition is an option of --executor slurm; this command uses "
                                         "--executor local"):
        options_from_cli("local", {"slurm_partition": "gpu"})
    with pytest.raises(InputError, match="--slurm-time: expected a time limit such as 90"):
        options_from_cli("slurm", {"slurm_time": "soon"})
    assert [parse_minutes(t) for t in ("90", "45s", "30m", "2h", "01:30:00")] == [90, 0.75, 30, 120, 90]

    # a run of two devices on the GPU: two GPUs and four CPUs per device, in the sbatch script submitit writes
    suite = load_suite(write_suite(extra="trainer: {max_epochs: 1}\n"),
                       ["variants.twin.trainer={devices: 2, accelerator: gpu}"])
    ex = SlurmExecutor(options)
    params = ex.resources(Job(suite, "twin", 0))
    assert params["gpus_per_node"] == 2 and params["cpus_per_task"] == 8 and params["timeout_min"] == 60
    from submitit.slurm import slurm

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun here: only sbatch's text
    auto = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    auto.update_parameters(**params)
    script = auto._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=ml", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=60", "#SBATCH --mem=16GB"):
        assert line in script, script
    assert SlurmExecutor(SlurmOptions()).resources(Job(suite, "merged", 0)).get("gpus_per_node") is None
    # devices as a list of indices: as many GPUs as the ranks the worker starts (suite.model.world_size)
    listed = load_suite(write_suite(extra="trainer: {max_epochs: 1}\n"),
                        ["variants.twin.trainer={devices: [0, 1], accelerator: gpu}"])
    assert ex.resources(Job(listed, "twin", 0))["gpus_per_node"] == 2


def test_runs_go_through_submitit_and_land_in_the_run_directory(cli: Any, write_suite: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg import cli as cli_module

    made: list[SlurmExecutor] = []
    fake = FakeRunner({"merged": {"acc": [0.90, 0.91], "loss": [0.3, 0.31]},
                       "twin": {"acc": [0.90, 0.92], "loss": [0.3, 0.29]}})

    def build(name: str, options: Any) -> SlurmExecutor:
        made.append(SlurmExecutor(options, worker=fake.worker))
        made[-1].trains = False  # it says so: the fake's worker builds no model, so there is nothing to check
        return made[-1]

    monkeypatch.setattr(cli_module, "make_executor", build)
    out = tmp_path / "run"
    res = cli("run", write_suite(seeds=2), "--executor", "slurm", "--slurm-cluster", "local", "--slurm-time", "10m",
              "--out", out, "--baselines", tmp_path / "b")
    assert res.exit_code == 0, res.output
    assert made[0].options.cluster == "local" and made[0].options.time_min == 10
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert sorted((r["variant"], r["seed"], r["metrics"]["acc"]) for r in runs) == [
        ("merged", 0, 0.90), ("merged", 1, 0.91), ("twin", 0, 0.90), ("twin", 1, 0.92)]
    assert all(r["device"].startswith("fake on ") for r in runs)  # ran in submitit's job, on this host
    assert len(list((out / "pair" / "slurm").glob("*_result.pkl"))) == 4  # submitit's files in the run directory


def _stop_at_seed_1(marks: str, pid: int) -> Any:
    def script(variant: str, seed: int) -> dict[str, float]:
        if seed == 0:
            Path(marks, f"{variant}-0").touch()
            return {"acc": 0.9, "loss": 0.3}
        while len(list(Path(marks).iterdir())) < 2:  # both seed-0 runs have finished
            time.sleep(0.1)
        time.sleep(1.5)  # and have been collected (the executor looks every 0.5 s)
        os.kill(pid, signal.SIGINT)  # Ctrl-C in normreg's terminal
        time.sleep(120)
        return {"acc": 0.9, "loss": 0.3}

    return script


def test_a_stop_cancels_the_jobs_and_resume_submits_only_the_rest(cli: Any, write_suite: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg import cli as cli_module

    (tmp_path / "marks").mkdir()
    made: list[SlurmExecutor] = []
    scripts = [_stop_at_seed_1(str(tmp_path / "marks"), os.getpid()), lambda v, s: {"acc": 0.9, "loss": 0.3}]

    def build(name: str, options: Any) -> SlurmExecutor:
        made.append(SlurmExecutor(options, worker=FakeRunner(scripts[len(made)]).worker))
        made[-1].trains = False  # it says so: the fake's worker builds no model, so there is nothing to check
        return made[-1]

    monkeypatch.setattr(cli_module, "make_executor", build)
    suite, out = write_suite(seeds=2), tmp_path / "o"
    args = ["run", str(suite), "--executor", "slurm", "--slurm-cluster", "local", "--out", str(out)]
    monkeypatch.setattr("sys.argv", ["normreg", *args])
    started = time.monotonic()
    res = cli(*args)
    assert res.exit_code == 130, res.output
    assert time.monotonic() - started < 60  # the sleeping jobs did not run out their 120 s
    lines = res.output.strip().splitlines()
    assert lines[-1] == f"Continue with: normreg run {suite} --executor slurm --slurm-cluster local --resume {out}"
    stopped = made[0].submitted
    assert {k[1:] for k in stopped} == {("merged", 0), ("twin", 0), ("merged", 1), ("twin", 1)}
    for key in [("pair", "merged", 1), ("pair", "twin", 1)]:  # cancelled: their processes have ended
        deadline = time.monotonic() + 20
        while stopped[key]._process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stopped[key]._process.poll() is not None

    res = cli("run", suite, "--executor", "slurm", "--slurm-cluster", "local", "--resume", out)
    assert res.exit_code == 0, res.output
    assert sorted(k[1:] for k in made[1].submitted) == [("merged", 1), ("twin", 1)]  # only what was missing
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert sorted((r["variant"], r["seed"], r["status"]) for r in runs) == [
        ("merged", 0, "ok"), ("merged", 1, "ok"), ("twin", 0, "ok"), ("twin", 1, "ok")]


def _slow_once(attempts: str) -> Any:
    def script(variant: str, seed: int) -> dict[str, float]:
        with open(attempts, "a") as f:
            f.write(f"{os.getpid()}\n")
        if len(Path(attempts).read_text().split()) == 1:
            time.sleep(60)  # the first attempt is pre-empted while it sleeps
        return {"acc": 0.9, "loss": 0.3}

    return script


def test_a_preempted_job_is_requeued_and_its_run_kept(write_suite: Any, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    suite = load_suite(write_suite(seeds=1))
    results: list[Any] = []

    def preempt(job: Job) -> None:  # what Slurm does to a pre-empted job: SIGUSR2 to its processes, then requeue
        deadline = time.monotonic() + 30
        while not attempts.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(int(attempts.read_text().split()[0]), signal.SIGUSR2)

    with SlurmExecutor(_local(tmp_path), worker=FakeRunner(_slow_once(str(attempts))).worker) as ex:
        ex.run([Job(suite, "merged", 0)], results.append, preempt)
    assert len(attempts.read_text().split()) == 2  # ran twice: pre-empted, requeued, finished
    assert [(r.status, r.metrics["acc"]) for r in results] == [("ok", 0.9)]


def _sleeps(variant: str, seed: int) -> dict[str, float]:
    time.sleep(60)
    return {"acc": 0.9, "loss": 0.3}


def test_a_job_past_its_time_limit_is_recorded_failed_with_the_reason(write_suite: Any, tmp_path: Path) -> None:
    suite = load_suite(write_suite(seeds=1))
    results: list[Any] = []
    options = _local(tmp_path, time_min=parse_minutes("3s"), max_requeues=0)
    with make_executor("slurm", options) as ex:
        ex.worker = FakeRunner(_sleeps).worker
        ex.run(plan_jobs(suite)[:1], results.append)
    assert len(results) == 1 and results[0].status == "failed"
    assert "SlurmJobFailed: job " in results[0].error
    assert "reached its time limit (0.05 min) after 0 requeue(s); raise --slurm-time" in results[0].error


def test_without_submitit_the_executor_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            write_suite: Any) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    suite = load_suite(write_suite(seeds=1))
    with pytest.raises(InputError, match=r"needs submitit.*pip install 'normreg\[slurm\]'"):
        SlurmExecutor(_local(tmp_path)).run(plan_jobs(suite), lambda r: None)


@pytest.mark.slow
def test_a_real_training_run_through_submitit(tmp_path: Path) -> None:
    """One tiny Lightning run trained in a submitit job (a fresh process that imports torch), as on a node."""
    from normreg.execution.worker import run_one

    suite = load_suite(TINY, ["seeds=1"])
    results: list[Any] = []
    with SlurmExecutor(_local(tmp_path, accelerator="cpu")) as ex:
        ex.run([Job(suite, "a", 0)], results.append)
    here = run_one(Job(suite, "a", 0), "cpu")
    assert results[0].status == "ok" and results[0].metrics == here.metrics


def test_a_job_past_its_time_limit_is_requeued_while_requeues_are_left(write_suite: Any, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    suite = load_suite(write_suite(seeds=1))
    results: list[Any] = []
    options = _local(tmp_path, time_min=parse_minutes("3s"), max_requeues=1)
    with SlurmExecutor(options, worker=FakeRunner(_slow_once(str(attempts))).worker) as ex:
        ex.run(plan_jobs(suite)[:1], results.append)
    assert len(attempts.read_text().split()) == 2  # the first attempt ran out of time and was requeued
    assert [(r.status, r.metrics["acc"]) for r in results] == [("ok", 0.9)]
