"""`--executor ray` on a local Ray instance (`ray.init(num_cpus=2)`, started once for the module: Ray is slow to
start on a small machine): the same values as the local executor, a dead worker fails only its run, the suite's
code comes from the copy Ray shipped, and cancelling ends the tasks in flight."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normreg.execution.executor import executor_names, options_from_cli, plan_jobs
from normreg.execution.executors.ray import RayExecutor, RayOptions, shipped_modules
from normreg.pipeline import run_suites
from normreg.suite.spec import load_suite
from tests.processes import new_tag, none_left, wait_for

ray = pytest.importorskip("ray")

TINY = Path(__file__).parents[2] / "data" / "suites" / "tiny.yaml"


@pytest.fixture(scope="module")
def local_ray():
    # On a busy 2-core machine the raylet can take more than Ray's default minute to register.
    previous = os.environ.get("RAY_raylet_start_wait_time_s")
    os.environ["RAY_raylet_start_wait_time_s"] = "300"
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()
    finally:
        if previous is None:
            os.environ.pop("RAY_raylet_start_wait_time_s", None)
        else:
            os.environ["RAY_raylet_start_wait_time_s"] = previous


def test_ray_gives_the_values_of_the_local_executor(local_ray, cli, tmp_path: Path, local_executor) -> None:
    res = cli("run", TINY, "--executor", "ray", "--seeds", "1", "--out", tmp_path / "ray", "--baselines",
              tmp_path / "b")
    assert res.exit_code == 3, res.output  # the broken variant fails, as it does locally
    on_ray = json.loads((tmp_path / "ray" / "report.json").read_text())["runs"]
    local = run_suites([TINY], seeds=1, executor=local_executor(workers=0), out=tmp_path / "local",
                       baselines=tmp_path / "b")

    def values(runs):
        return {(r["variant"], r["seed"]): (r["status"], r["metrics"], r["error"]) for r in runs}

    assert values(on_ray) == values(r.to_json() for r in local.runs)
    assert values(on_ray)[("a", 0)][0] == "ok" and values(on_ray)[("broken", 0)][0] == "failed"
    assert {r["device"] for r in on_ray} == {f"cpu on {socket.gethostname()}"}  # where each run ran
    assert len((tmp_path / "ray" / "tiny" / "runs.jsonl").read_text().splitlines()) == 3  # written as they came
    assert ray.is_initialized()  # a connection normreg did not open is left open


def test_a_dead_worker_fails_its_run_only_and_code_comes_from_the_shipped_copy(local_ray) -> None:
    suite = load_suite(TINY, ["seeds=1"])

    def worker(job, accelerator):  # runs in a Ray worker: pickled by value, imports inside
        import importlib
        import os

        from normreg.execution.results import RunResult
        from normreg.suite.targets import importable

        if job.variant == "b":
            os._exit(1)
        importable([job.suite.directory])
        where = importlib.import_module("tiny_models").__file__
        return RunResult(job.suite.name, job.variant, job.seed, "ok", {"acc": 1.0}, 0.0, where, device="cpu")

    results = []
    with RayExecutor(worker=worker) as ex:
        ex.run(plan_jobs(suite), results.append)
    by = {r.variant: r for r in results}
    assert by["b"].status == "failed" and by["b"].error.startswith("WorkerDied: the Ray worker running it exited")
    assert by["a"].ok and by["broken"].ok
    shipped = Path(by["a"].error)
    assert shipped.name == "tiny_models.py" and shipped.parent != TINY.parent  # Ray's copy, not the original
    assert (shipped.parent / "tiny.yaml").read_text() == TINY.read_text()


def test_cancel_ends_the_tasks_in_flight_and_reports_the_finished(local_ray) -> None:
    suite = load_suite(TINY, ["seeds=1"])

    def worker(job, accelerator):
        import time

        from normreg.execution.results import RunResult

        if job.variant != "a":
            time.sleep(300)
        return RunResult(job.suite.name, job.variant, job.seed, "ok", {"acc": 1.0}, 0.0, device="cpu")

    ex = RayExecutor(worker=worker)
    started, results = [], []

    def on_result(result) -> None:
        results.append(result)
        ex.cancel()  # as SIGINT or SIGTERM would, through the pipeline's handler

    ex.run(plan_jobs(suite), on_result, started.append)
    assert [r.variant for r in results] == ["a"] and [j.variant for j in started] == ["a", "b"]
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2:  # the sleeping task was killed: its CPU is free again
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)


def test_a_task_past_its_time_limit_is_cancelled_and_failed(local_ray) -> None:
    import dataclasses

    # counted from when Ray has the task: a fresh Ray worker may take seconds to start on a busy machine
    suite = dataclasses.replace(load_suite(TINY, ["seeds=1"]), run_timeout=15.0)

    def worker(job, accelerator):
        import time

        from normreg.execution.results import RunResult

        if job.variant == "b":
            time.sleep(300)
        return RunResult(job.suite.name, job.variant, job.seed, "ok", {"acc": 1.0}, 0.0, device="cpu")

    results = []
    start = time.monotonic()
    RayExecutor(worker=worker).run(plan_jobs(suite), results.append)
    assert time.monotonic() - start < 60
    status = {r.variant: (r.status, r.error) for r in results}
    assert status["a"] == ("ok", None) and status["broken"] == ("ok", None)
    assert status["b"] == ("failed", "TimedOut: timed out after 15 s (run_timeout); the run was ended and the other "
                                     "runs went on")
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2:  # the task was killed: its CPU is free again
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)


def _assigned_cpus(job, accelerator):  # noqa: ANN001, ANN202 - a Ray task's worker: the CPUs Ray gave it
    import ray as ray_in_task

    from normreg.execution.results import RunResult

    cpus = ray_in_task.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
    return RunResult(job.suite.name, job.variant, job.seed, "ok", {"acc": cpus}, 0.0, device="cpu")


def test_a_run_of_several_processes_asks_ray_for_a_cpu_per_process(local_ray) -> None:
    suite = load_suite(TINY, ["seeds=1", "variants.b.trainer.devices=2", "variants.b.trainer.strategy=ddp"])
    results = []
    RayExecutor(worker=_assigned_cpus).run(plan_jobs(suite), results.append)
    assert {r.variant: r.metrics["acc"] for r in results} == {"a": 1.0, "b": 2.0, "broken": 1.0}
    # handed to Ray only when there is room (a run's time limit counts from then): on the 2-CPU instance a
    # 1-CPU run may start beside a 1-CPU run, a 2-process run only alone
    assert RayExecutor._room(ray, (1.0, 0.0), [(1.0, 0.0)])
    assert not RayExecutor._room(ray, (2.0, 0.0), [(1.0, 0.0)])
    assert RayExecutor._room(ray, (2.0, 0.0), [])


def test_a_run_larger_than_any_node_is_refused_before_anything_is_submitted(local_ray) -> None:
    from normreg.errors import InputError

    suite = load_suite(TINY, ["seeds=1", "variants.b.trainer.devices=4", "variants.b.trainer.strategy=ddp"])
    results = []
    with pytest.raises(InputError, match=r"variant 'b' asks Ray for 4 CPU\(s\) \(trainer.devices x "
                                         r"--ray-cpus-per-run\), but no node of the cluster has that many \(the "
                                         r"largest: 2 CPU\(s\), 0 GPU\(s\)\)"):
        RayExecutor(worker=_assigned_cpus).run(plan_jobs(suite), results.append)
    assert results == []


def test_ray_is_a_registered_executor_and_refuses_devices() -> None:
    from normreg.errors import InputError

    assert "ray" in executor_names()
    with pytest.raises(InputError, match="--devices is an option of --executor local; this command uses "
                                         "--executor ray"):
        options_from_cli("ray", {"devices": "0"})


def test_modules_outside_the_suite_folder_are_shipped(tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("")
    (tmp_path / "suites" / "s.yaml").write_text(
        "name: s\nmetrics: {acc: {}}\nvariants: {a: {model: mypkg.models:M}, b: {model: single:M},"
        " c: {model: normreg.examples.digits:Net}, d: {model: json:loads}}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        modules = shipped_modules(plan_jobs(load_suite(tmp_path / "suites" / "s.yaml")))
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("mypkg", "single"):
            sys.modules.pop(name, None)
    assert modules == {"s": [str(tmp_path / "mypkg"), str(tmp_path / "single.py")]}


@pytest.mark.slow  # about 45 s on 2 cores: a Ray instance of its own, whose fresh workers import torch per task
@pytest.mark.skipif(sys.platform != "linux", reason="uses ps and Linux signals")
def test_sigint_ends_the_ray_tasks_and_the_local_instance_and_keeps_what_finished(tmp_path: Path) -> None:
    """The real signal to a real `normreg run --executor ray`: exit 130 with the --resume line, the finished runs
    on disk, and no process left of the Ray instance it started (raylet, GCS, workers: all carry the tag)."""
    name, value = new_tag()
    out = tmp_path / "run"
    slow = ["--set", "variants={a: {model: tiny_models:Classifier}, b: {model: tiny_models:Classifier}}",
            "--set", "trainer.max_epochs=15", "--set", "data.args.n=1024", "--seeds", "6"]
    env = {**os.environ, name: value, "RAY_raylet_start_wait_time_s": "300"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "normreg.cli", "run", str(TINY), "--executor", "ray", "--out",
                             str(out), *slow], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    results = out / "tiny" / "results.csv"
    try:
        wait_for(lambda: proc.poll() is not None or (results.exists() and len(results.read_text().splitlines()) > 1),
                 "a finished run")
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)  # the parent alone
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert output.strip().splitlines()[-1].endswith(f"--resume {out}"), output
    rows = results.read_text().splitlines()[1:]
    assert 1 <= len(rows) < 12 and all(",ok," in r for r in rows), rows
    none_left(f"{name}={value}")


def test_a_ray_without_the_upload_helper_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg.errors import RunError

    monkeypatch.setitem(sys.modules, "ray._private.runtime_env.py_modules", None)  # as if Ray had moved it
    with pytest.raises(RunError, match=r"has no ray\._private\.runtime_env\.py_modules\.upload_py_modules_if_needed"
                                       r".*pip install ray=="):
        RayExecutor._upload(ray, {"py_modules": []})


def test_a_cluster_wanting_a_token_is_refused_with_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's own chain, as `ray.init` raises it when the cluster wants a token (the slow cluster test meets it for
    real): normreg says to set the token instead of blaming the address."""
    from normreg.errors import RunError

    def init(**kwargs):
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: ray.exceptions.AuthenticationError: "
                               "RPC error: InvalidAuthToken: Authentication token is missing or incorrect.")
        except RuntimeError as e:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from e

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(RayExecutor, "_check_reachable", lambda self, address: True)  # a head that listens
    with pytest.raises(RunError, match=r"cluster at 10\.0\.0\.1:6379: it uses token authentication.*"
                                       r"RAY_AUTH_MODE=token.*RAY_AUTH_TOKEN"):
        RayExecutor(RayOptions(address="10.0.0.1:6379"))._connect(None)


@pytest.mark.gpu
def test_ray_tasks_on_the_gpu_give_the_local_executors_values(local_ray, cli, tmp_path: Path,
                                                               local_executor) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or not ray.cluster_resources().get("GPU"):
        pytest.skip("no CUDA device in the Ray instance")
    res = cli("run", TINY, "--executor", "ray", "--accelerator", "gpu", "--runs-per-gpu", "3", "--out",
              tmp_path / "ray", "--baselines", tmp_path / "b")
    assert res.exit_code == 3, res.output  # the broken variant fails, as it does locally
    on_ray = json.loads((tmp_path / "ray" / "report.json").read_text())["runs"]
    local = run_suites([TINY], executor=local_executor(workers=0, accelerator="gpu"), out=tmp_path / "local",
                       baselines=tmp_path / "b")
    ok = {(r["variant"], r["seed"]): r["metrics"] for r in on_ray if r["status"] == "ok"}
    assert ok == {(r.variant, r.seed): r.metrics for r in local.runs if r.ok} and len(ok) == 4
    name = torch.cuda.get_device_name(0)
    assert {r["device"] for r in on_ray if r["status"] == "ok"} == {f"cuda:0 ({name}) on {socket.gethostname()}"}


@pytest.mark.gpu
def test_each_gpu_task_asks_ray_for_its_share_of_a_gpu(local_ray) -> None:
    if not ray.cluster_resources().get("GPU"):
        pytest.skip("no GPU in the Ray instance")
    suite = load_suite(TINY, ["seeds=1", "variants.b.trainer={accelerator: cpu}"])

    def worker(job, accelerator):  # what Ray gave the task, instead of training
        import ray

        from normreg.execution.results import RunResult

        got = ray.get_runtime_context().get_assigned_resources()
        return RunResult(job.suite.name, job.variant, job.seed, "ok",
                         {"gpu": got.get("GPU", 0.0), "cpu": got.get("CPU", 0.0)}, 0.0, accelerator, device="-")

    results = []
    with RayExecutor(RayOptions(runs_per_gpu=4, accelerator="gpu"), worker=worker) as ex:
        ex.run(plan_jobs(suite), results.append)
    by = {r.variant: r for r in results}
    assert by["a"].metrics == {"gpu": 0.25, "cpu": 1.0} and by["a"].error == "gpu"
    assert by["b"].metrics == {"gpu": 0.0, "cpu": 1.0} and by["b"].error == "cpu"  # its own trainer wins


def _dead_address() -> str:
    with socket.socket() as s:  # a port nothing listens on: bound, then released
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_an_address_where_nothing_listens_fails_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg.errors import RunError

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("ray.init retries a dead address for minutes"))
    monkeypatch.setattr("normreg.execution.executors.ray.CONNECT_WITHIN_S", 1.0)
    address = _dead_address()
    start = time.monotonic()
    with pytest.raises(RunError, match=rf"^cannot connect to the Ray cluster at {address}: nothing accepted a "
                                       r"connection there within 1 s \(Connection refused\); check --ray-address"):
        RayExecutor(RayOptions(address=address))._connect(None)
    assert time.monotonic() - start < 5


def test_a_cancel_ends_the_wait_for_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("a cancelled run must not connect"))
    executor = RayExecutor(RayOptions(address=_dead_address()))
    threading.Timer(0.5, executor.cancel).start()  # as SIGTERM's handler does
    start = time.monotonic()
    executor.run(plan_jobs(load_suite(TINY)), lambda r: pytest.fail("nothing ran"))
    assert time.monotonic() - start < 3
