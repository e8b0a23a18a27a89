"""`--executor ray`: each (variant, seed) is one Ray task running the same worker code as the local executor.

It connects to an existing cluster (`--ray-address`, else `RAY_ADDRESS`), else starts a local Ray instance and shuts
it down on `close()`; a Ray connection already open in this process (a notebook, a test) is used as it is and left
open. Each task asks for `cpus_per_run` CPUs (1) and, when it trains on a GPU, `1 / runs_per_gpu` of one, so several
small runs share a GPU (default runs per GPU: the cluster's CPUs divided by its GPUs, as on one machine). A run of N
processes (`trainer.devices: N`, normreg/execution/ddp.py starts its ranks inside the task) asks for N times the
CPUs and, on GPUs, N whole GPUs; one that no node of the cluster could ever hold is refused before anything is
submitted. The suites' folders travel with the tasks (Ray's runtime environment, `py_modules`: uploaded once, keyed
by content, unpacked on each node), and so does every package or module the suites' targets import from outside the
installed packages: a node needs normreg, torch and Lightning installed, not the user's code. On the node a task
runs its suite from the shipped copy of its folder.

Results are handed back as each task finishes (the caller writes them at once); a task whose worker dies
(killed, out of memory, its node lost) is that run's failure and the others go on. `cancel()` (SIGINT, SIGTERM)
cancels every task in flight with `ray.cancel(force=True)`, reports the runs that had already finished, and
returns.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from normreg.errors import InputError, RunError
from normreg.execution.executor import (
    ExecutorBase,
    ExecutorOptions,
    Job,
    OnResult,
    OnStart,
    job_accelerator,
    option,
    register,
)
from normreg.execution.results import RunResult
from normreg.suite.model import world_size

# Not worth shipping to every node: results, checkouts, caches, checkpoints, logs.
EXCLUDES = ["runs/", ".git/", "**/__pycache__/", "**/*.pyc", "lightning_logs/", "**/*.ckpt", ".venv/",
            "baselines/", "reports/"]
POLL_S = 0.2  # how often the wait for results wakes to look at the cancel flag
CANCEL_RETRY_S = 1.0  # how long a cancelled task gets to end before its cancel is sent again
CANCEL_WAIT_S = 30.0  # how long cancelling waits, at most, for the tasks in flight to end
CONNECT_WITHIN_S = 10.0  # how long a cluster address may refuse connections before the run fails

Worker = Callable[[Job, str], RunResult]


def _installed(path: Path) -> bool:
    """Inside the interpreter's standard library or site packages: present on every node with the environment."""
    text = str(path)
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return "site-packages" in text or "dist-packages" in text or any(text.startswith(r) for r in roots)


def shipped_modules(jobs: Sequence[Job]) -> dict[str, list[str]]:
    """Per suite, the local packages (folders) and single-file modules its targets import from outside the suite's
    folder and the installed packages: what Ray must ship so that a bare node can import them."""
    from normreg.suite.targets import importable

    out: dict[str, list[str]] = {}
    for suite in {j.suite.name: j.suite for j in jobs}.values():
        importable([suite.directory])
        folder = suite.directory.resolve()
        paths: list[str] = []
        targets = [t for v in suite.variants for t in (v.model, v.data) if t is not None]
        for top in sorted({t.module.split(".")[0] for t in targets}):
            if top == "normreg":
                continue
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            if spec is None or spec.origin in (None, "built-in", "frozen"):
                continue
            if spec.submodule_search_locations:
                locations = list(spec.submodule_search_locations)
                if len(locations) != 1:
                    continue  # a namespace package split over folders: it has to be installed on the nodes
                where = Path(locations[0]).resolve()
            else:
                where = Path(spec.origin).resolve()
            if _installed(where) or where.is_relative_to(folder):
                continue
            paths.append(str(where))
        out[suite.name] = paths
    return out


def runtime_env(jobs: Sequence[Job]) -> dict[str, Any]:
    """The tasks' runtime environment: every suite's folder and the local modules its targets import."""
    folders = sorted({str(j.suite.directory.resolve()) for j in jobs})
    modules = sorted({m for ms in shipped_modules(jobs).values() for m in ms} - set(folders))
    return {"py_modules": [*folders, *modules], "excludes": EXCLUDES}


def on_node(job: Job) -> Job:
    """The job with its suite read from the copy of its folder that Ray shipped to this node (the copy's parent
    is on `sys.path`), or as it is when nothing was shipped."""
    folder, name = job.suite.directory, job.suite.path.name
    for entry in sys.path:
        copy = Path(entry) / folder.name
        if entry and copy != folder and (copy / name).is_file():
            return replace(job, suite=replace(job.suite, path=copy / name))
    return job


def ray_task(job: Job, accelerator: str, worker: Worker | None = None) -> RunResult:
    """What each Ray task runs: the local executor's worker code on the node's copy of the suite; the result's
    device names the host."""
    if worker is None:
        from normreg.execution.worker import run_one as worker
    result = worker(on_node(job), accelerator)
    return replace(result, device=f"{result.device or 'unknown'} on {socket.gethostname()}")


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _authentication_failed(e: BaseException) -> bool:
    """Whether connecting failed because the cluster wants a token this process did not send: Ray wraps its
    AuthenticationError in a RuntimeError wrapped in a ConnectionError, so the chain's text is searched."""
    seen: BaseException | None = e
    while seen is not None:
        if type(seen).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _failed(job: Job, message: str) -> RunResult:
    return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0, message)


@dataclass(frozen=True)
class RayOptions(ExecutorOptions):
    """`--executor ray`'s options. `address`: a cluster to join (default: RAY_ADDRESS, else a local instance
    started for the run). `runs_per_gpu`: runs sharing one GPU (default: the cluster's CPUs / GPUs).
    `cpus_per_run`: the CPUs each task asks Ray for."""

    address: str | None = field(default=None, metadata=option(
        "With --executor ray: the cluster to join, e.g. 10.0.0.5:6379 (default: RAY_ADDRESS, else a local Ray "
        "instance started for the run).", flag="--ray-address"))
    runs_per_gpu: int | None = field(default=None, metadata=option(
        "Runs sharing one GPU (default: cores / GPUs, so every core drives a run).", flag="--runs-per-gpu", min=1))
    cpus_per_run: float = field(default=1.0, metadata=option(
        "With --executor ray: the CPUs each run asks Ray for, per process of the run (default: 1).", min=0.001))


@register("ray")
class RayExecutor(ExecutorBase):
    """Runs jobs as Ray tasks; see the module docstring. `worker(job, accelerator)` is what each task runs (the
    local executor's `run_one` by default; tests give their own)."""

    trains = True
    Options = RayOptions
    options: RayOptions

    def __init__(self, options: ExecutorOptions | None = None, *, cpus_per_run: float | None = None,
                 worker: Worker | None = None) -> None:
        super().__init__(options)
        self.cpus_per_run = self.options.cpus_per_run if cpus_per_run is None else cpus_per_run
        self.worker = worker
        self._opened = False

    # ------------------------------------------------------------------------------- the Executor protocol

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        if not jobs or self._cancelled:
            return
        import ray

        env = runtime_env(jobs)
        self._connect(env)
        if self._cancelled:
            return
        self._run(ray, list(jobs), self._upload(ray, env), on_result, on_start)

    # warm_up starts nothing: the connection needs the jobs (a Ray Client connection ships their modules on
    # connecting).

    def close(self) -> None:
        if self._opened:
            import ray

            ray.shutdown()
            self._opened = False

    @property
    def device(self) -> str:
        """The kind of device runs train on, from the cluster's resources (connecting to it, once): `cpu`, or
        `cuda (NVIDIA <type>)` when the cluster has GPUs and --accelerator is not cpu. A Ray Client address is not
        connected to before the jobs are known (it needs them to connect): `unknown` there."""
        if self.options.accelerator == "cpu":
            return "cpu"
        if self._client_address():
            return "unknown"
        import ray

        self._connect(None)
        resources = ray.cluster_resources()
        if not resources.get("GPU"):
            return "cpu"
        kinds = sorted(k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:"))
        return f"cuda (NVIDIA {kinds[0]})" if kinds else "cuda"

    def _address(self) -> str | None:
        return self.options.address or os.environ.get("RAY_ADDRESS") or None

    def _client_address(self) -> bool:
        address = self._address()
        return bool(address and address.startswith("ray://"))

    # ------------------------------------------------------------------------------------ connection

    def _connect(self, env: dict[str, Any] | None) -> None:
        """Connect, or start a local instance, once. A Ray Client address (`ray://`) gets the runtime
        environment for the whole job here, as Ray requires there."""
        import ray

        if ray.is_initialized():
            return
        address = self._address()
        if address and address != "auto" and not self._check_reachable(address):
            return  # cancelled while waiting
        try:
            # "local" starts a new instance even when another one on this machine left its address behind.
            ray.init(address=address or "local", runtime_env=env if self._client_address() else None,
                     logging_level=logging.WARNING, log_to_driver=False,
                     include_dashboard=False if address is None else None)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            if _authentication_failed(e):
                raise RunError(f"cannot connect to {where}: it uses token authentication (the default of "
                               "`ray start --head`) and this process sent no valid token; set "
                               "RAY_AUTH_MODE=token, and the cluster's token in RAY_AUTH_TOKEN or in "
                               "~/.ray/auth_token (copied from the head node)") from None
            raise RunError(f"cannot connect to {where}: {_first_line(e)}; check --ray-address (or RAY_ADDRESS) "
                           "and that the cluster runs the same Ray and Python versions") from None
        self._opened = True

    def _check_reachable(self, address: str, within: float | None = None) -> bool:
        """Fail in seconds, not minutes, on an address where nothing listens: Ray itself retries a dead address
        for minutes without reacting to signals. A head still starting gets `within` seconds; a cancel (SIGINT,
        SIGTERM) ends the wait at once: False."""
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            number = int(port)
        except ValueError:
            return True  # not host:port: Ray's own error says what is wrong with it
        within = CONNECT_WITHIN_S if within is None else within
        deadline = time.monotonic() + within
        while True:
            try:
                with socket.create_connection((host or "127.0.0.1", number), timeout=1.0):
                    return True
            except OSError as e:
                reason = e.strerror or type(e).__name__
            if self._cancelled:
                return False
            if time.monotonic() >= deadline:
                raise RunError(f"cannot connect to the Ray cluster at {address}: nothing accepted a connection there "
                               f"within {within:g} s ({reason}); check --ray-address (or RAY_ADDRESS) and that the "
                               "head node runs") from None
            time.sleep(0.25)

    @staticmethod
    def _upload(ray: Any, env: dict[str, Any]) -> dict[str, Any] | None:
        """Upload the folders and modules (Ray keys them by content, so again costs nothing) and return the
        per-task runtime environment naming them; None for a Ray Client connection, which has them already.

        Ray uploads local folders only for a job-level environment given to `ray.init`; normreg may join a Ray
        already started (by the user, or with other suites' modules), so it uploads them itself with the helper
        `ray.init` uses. That helper is not public: a Ray without it is refused with what to do."""
        try:
            from ray._private.runtime_env.py_modules import upload_py_modules_if_needed
        except ImportError:
            raise RunError(f"this Ray ({ray.__version__}) has no ray._private.runtime_env.py_modules."
                           "upload_py_modules_if_needed, which normreg uses to ship the suites' folders to the "
                           "cluster; install the Ray normreg is tested with (pip install ray==2.60.0)") from None

        node = getattr(ray._private.worker.global_worker, "node", None)
        if node is None:
            return None
        scratch = node.get_runtime_env_dir_path()
        try:
            uploaded = upload_py_modules_if_needed(dict(env), include_gitignore=True, scratch_dir=scratch)
        except TypeError:  # Ray before include_gitignore
            uploaded = upload_py_modules_if_needed(dict(env), scratch_dir=scratch)
        return {"py_modules": uploaded["py_modules"]}

    # ------------------------------------------------------------------------------------ placement

    def _accelerator(self, job: Job, cluster_gpus: float) -> str:
        """"gpu" or "cpu": the variant's own `trainer.accelerator` wins over --accelerator."""
        return job_accelerator(job, self.options.accelerator, cluster_gpus > 0)

    def _runs_per_gpu(self, resources: dict[str, float]) -> int:
        from normreg.execution.placement import default_runs_per_gpu

        return self.options.runs_per_gpu or default_runs_per_gpu(int(resources.get("CPU", 1)),
                                                                 max(1, int(resources.get("GPU", 1))))

    def _asks(self, job: Job, size: int, gpu: bool, share: float) -> tuple[float, float]:
        """The (CPUs, GPUs) a task asks Ray for: `cpus_per_run` per process; on a GPU a share of one for a run of
        one process, a whole GPU per process for a run of several (each rank trains on its own device)."""
        return self.cpus_per_run * size, (float(size) if size > 1 else share) if gpu else 0.0

    def _refuse_what_never_fits(self, ray: Any, jobs: Sequence[Job], asks: dict[Any, tuple[float, float]]) -> None:
        """A task that asks for more than any node holds would wait in Ray's queue for ever: an input error, named,
        before any task is submitted."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
        for job in jobs:
            cpus, gpus = asks[job.key]
            if not any(cpus <= r.get("CPU", 0) and gpus <= r.get("GPU", 0) for r in nodes):
                most = max(nodes, key=lambda r: (r.get("CPU", 0), r.get("GPU", 0)), default={})
                raise InputError(
                    f"suite '{job.suite.name}', variant '{job.variant}' asks Ray for {cpus:g} CPU(s)"
                    f"{f' and {gpus:g} GPU(s)' if gpus else ''} (trainer.devices x --ray-cpus-per-run), but no "
                    f"node of the cluster has that many (the largest: {most.get('CPU', 0):g} CPU(s), "
                    f"{most.get('GPU', 0):g} GPU(s)); lower trainer.devices or --ray-cpus-per-run")

    @staticmethod
    def _room(ray: Any, asks: tuple[float, float], held: Sequence[tuple[float, float]]) -> bool:
        """Whether a task asking for `asks` can start now beside the tasks holding `held`; the others wait here,
        so 'running' means running (and a run's time limit counts from when it can start)."""
        if not held:
            return True
        resources = ray.cluster_resources()
        cpus = sum(c for c, _ in held) + asks[0]
        gpus = sum(g for _, g in held) + asks[1]
        return cpus <= resources.get("CPU", 0) + 1e-9 and gpus <= resources.get("GPU", 0) + 1e-9

    # ------------------------------------------------------------------------------------ running

    def _run(self, ray: Any, queue: list[Job], env: dict[str, Any] | None, on_result: OnResult,
             on_start: OnStart | None) -> None:
        resources = ray.cluster_resources()
        cluster_gpus = float(resources.get("GPU", 0))
        share = 1.0 / self._runs_per_gpu(resources)
        accel = {job.key: self._accelerator(job, cluster_gpus) for job in queue}
        # no GPU in the cluster: a run asks for none, and Lightning says why it cannot train
        asks = {job.key: self._asks(job, world_size(job.suite.variant(job.variant).trainer),
                                    accel[job.key] == "gpu" and cluster_gpus > 0, share) for job in queue}
        self._refuse_what_never_fits(ray, queue, asks)
        remote = ray.remote(max_retries=0)(ray_task)
        in_flight: dict[Any, Job] = {}
        started: dict[Any, float] = {}
        ended: list[Any] = []  # timed out: cancelled, and cancelled again at the end until they are gone
        try:
            while not self._cancelled and (queue or in_flight):
                while (queue and not self._cancelled
                       and self._room(ray, asks[queue[0].key], [asks[j.key] for j in in_flight.values()])):
                    job = queue.pop(0)  # in order: a big run waits for room, and the small ones behind it too
                    cpus, gpus = asks[job.key]
                    ref = remote.options(
                        num_cpus=cpus, num_gpus=gpus,
                        runtime_env=env, name=f"normreg {job.suite.name}/{job.variant}/seed{job.seed}",
                    ).remote(job, accel[job.key], self.worker)
                    in_flight[ref] = job
                    started[ref] = time.monotonic()
                    if on_start:
                        on_start(job)
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                for ref in done:
                    on_result(self._result(ray, ref, in_flight.pop(ref)))
                self._time_out(ray, in_flight, started, ended, on_result)
            if in_flight:  # cancelled: report what already finished, end the rest
                done, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                for ref in done:
                    on_result(self._result(ray, ref, in_flight.pop(ref)))
        finally:
            self._end(ray, list(in_flight) + ended)

    @staticmethod
    def _time_out(ray: Any, in_flight: dict[Any, Job], started: dict[Any, float], ended: list[Any],
                  on_result: OnResult) -> None:
        """Tasks past their suite's `run_timeout` (counted from when they were handed to Ray): cancelled (forced)
        and recorded failed; the other runs go on."""
        from normreg.execution.worker import timed_out

        now = time.monotonic()
        for ref, job in list(in_flight.items()):
            limit = job.suite.run_timeout
            if limit is not None and now - started[ref] > limit:
                ray.cancel(ref, force=True)
                del in_flight[ref]
                ended.append(ref)
                on_result(timed_out(job, now - started[ref]))

    @staticmethod
    def _end(ray: Any, refs: list[Any]) -> None:
        """Cancel the tasks still in flight, so that nothing this run asked for goes on running on the cluster.
        A cancel that reaches a task while its worker is still starting can be lost (Ray then runs the task
        anyway), so each cancel is repeated until the task has ended, for at most CANCEL_WAIT_S."""
        deadline = time.monotonic() + CANCEL_WAIT_S
        while refs and time.monotonic() < deadline:
            for ref in refs:
                ray.cancel(ref, force=True)
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_RETRY_S, fetch_local=False)

    @staticmethod
    def _result(ray: Any, ref: Any, job: Job) -> RunResult:
        """The task's result; a task that did not return one is that run's failure, saying why."""
        from normreg.execution.worker import describe_error

        exc = ray.exceptions
        try:
            result = ray.get(ref)
        except exc.RayTaskError as e:  # the worker code raised past its own handling
            cause = getattr(e, "cause", None)
            return _failed(job, describe_error(cause) if isinstance(cause, BaseException) else _first_line(e))
        except (exc.WorkerCrashedError, exc.NodeDiedError, exc.OutOfMemoryError) as e:
            return _failed(job, f"WorkerDied: the Ray worker running it exited abruptly (killed, out of memory, a "
                                f"crash in native code, or its node lost): {type(e).__name__}")
        except exc.RuntimeEnvSetupError as e:
            return _failed(job, f"RuntimeEnvSetupError: Ray could not ship the suite's folder or modules to the "
                                f"node: {_first_line(e)}")
        except exc.RayError as e:
            return _failed(job, f"{type(e).__name__}: {_first_line(e)}")
        if not isinstance(result, RunResult):
            return _failed(job, f"WorkerError: the Ray task returned {type(result).__name__}, not a run result")
        return result
