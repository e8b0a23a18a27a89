"""Training runs: each (variant, seed) is seeded, built, fitted and tested by Lightning in a worker process.

The `Runner` protocol is what the harness needs; `LightningRunner` does real training, `normreg.run.fake.FakeRunner`
returns scripted metrics for tests. Results are handed to `on_result` as each run finishes, so the caller can
put them on disk before the next one ends.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from normreg.run.results import RunResult
from normreg.suite.spec import Suite


@dataclass(frozen=True)
class Job:
    suite: Suite
    variant: str
    seed: int
    run_dir: Path | None = None  # where the run may write files (only when the suite enables loggers/checkpoints)


OnResult = Callable[[RunResult], None]
OnStart = Callable[[Job], None]


class Runner(Protocol):
    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        """Run every job; call `on_result` once per job, in completion order. Never raises for a failed run."""


def plan_jobs(suite: Suite, run_dir: Path | None = None, seeds: Sequence[int] | None = None) -> list[Job]:
    """Seed-major order (every variant at seed 0, then seed 1, ...), so a partial run stays balanced."""
    return [Job(suite, v.name, s, run_dir) for s in (seeds if seeds is not None else suite.seeds)
            for v in suite.variants]


def describe_error(exc: BaseException) -> str:
    """`Type: message (at file.py:line in function)`, naming the innermost frame of the user's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the normreg package
    examples = os.path.join(here, "examples")  # the story models are user code, whatever package holds them

    def is_user(filename: str) -> bool:
        ours = filename.startswith(here) and not filename.startswith(examples)
        return not ours and "site-packages" not in filename and not filename.startswith("<frozen")

    user = [f for f in frames if is_user(f.filename)]
    frame = (user or frames or [None])[-1]
    where = f" (at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name})" if frame else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


# ---------------------------------------------------------------------------------- inside a worker


def _quiet_lightning() -> None:
    import logging
    import warnings

    # Lightning sets its loggers to INFO when imported, so this runs after the import.
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*_pytree.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*log_every_n_steps.*")


def _trainer_module(model: Any) -> Any:
    """The Lightning flavour the model was written against (`pytorch_lightning` or `lightning.pytorch`)."""
    import importlib

    for name in ("pytorch_lightning", "lightning.pytorch"):
        try:
            pl = importlib.import_module(name)
        except ImportError:
            continue
        if isinstance(model, pl.LightningModule):
            return pl
    raise TypeError(f"{type(model).__qualname__} is not a LightningModule")


def _history_callback(pl: Any) -> Any:
    class History(pl.Callback):  # type: ignore[misc,name-defined]
        """Per-epoch scalar metrics, for learning curves in reports."""

        def __init__(self) -> None:
            self.values: dict[str, list[float]] = {}

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            for k, v in trainer.callback_metrics.items():
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    continue
                self.values.setdefault(k, []).append(x)

    return History()


def run_one(job: Job) -> RunResult:
    """Seed, build, fit and test one variant; any exception or NaN becomes a failed RunResult."""
    import pytorch_lightning

    from normreg.suite.targets import build, importable

    _quiet_lightning()
    start = time.perf_counter()
    suite, variant = job.suite, job.suite.variant(job.variant)
    history: dict[str, list[float]] = {}

    def failed(message: str) -> RunResult:
        return RunResult(suite.name, job.variant, job.seed, "failed", {}, time.perf_counter() - start, message,
                         history)

    try:
        importable([suite.directory])
        pytorch_lightning.seed_everything(job.seed, workers=True, verbose=False)
        dm = build(suite, variant.data, "data") if variant.data is not None else None
        model = build(suite, variant.model, "model")
        pl = _trainer_module(model)
        pl.seed_everything(job.seed, workers=True, verbose=False)
        hist = _history_callback(pl)
        options: dict[str, Any] = {"accelerator": "auto", "devices": 1, "deterministic": True, **variant.trainer}
        options["callbacks"] = [*(options.get("callbacks") or []), hist]
        if job.run_dir is not None:
            options.setdefault("default_root_dir", str(job.run_dir / f"{job.variant}-seed{job.seed}"))
        trainer = pl.Trainer(**options)
        trainer.fit(model, datamodule=dm)
        history = hist.values
        from pytorch_lightning.utilities.model_helpers import is_overridden

        evaluate = trainer.test if is_overridden("test_step", model) else trainer.validate
        outputs = evaluate(model, datamodule=dm, verbose=False)
    except Exception as e:
        return failed(describe_error(e))
    metrics: dict[str, float] = {}
    for out in outputs or []:
        for k, v in out.items():
            metrics[k] = float(v)
    step = "test_step" if evaluate == trainer.test else "validation_step"
    return result_from_metrics(job, metrics, time.perf_counter() - start, history, step)


def result_from_metrics(job: Job, metrics: dict[str, float], duration: float,
                        history: dict[str, list[float]] | None = None, step: str = "test_step") -> RunResult:
    """A finished run's result: failed when a suite metric is missing or not finite, else ok."""
    suite = job.suite

    def failed(message: str) -> RunResult:
        return RunResult(suite.name, job.variant, job.seed, "failed", metrics, duration, message, history or {})

    missing = [m.name for m in suite.metrics if m.name not in metrics]
    if missing:
        return failed(f"MissingMetric: the model logged {', '.join(sorted(metrics)) or 'nothing'} in its {step}, "
                      f"but not {', '.join(missing)}; log it with self.log('{missing[0]}', value)")
    bad = [m.name for m in suite.metrics if not math.isfinite(metrics[m.name])]
    if bad:
        return failed(f"NonFiniteMetric: {', '.join(f'{n}={metrics[n]}' for n in bad)}")
    return RunResult(suite.name, job.variant, job.seed, "ok", metrics, duration, None, history or {})


def _init_worker(threads: int, devices: Any) -> None:
    # Runs before torch is imported in this process: CUDA_VISIBLE_DEVICES only takes effect if set first.
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------- the runner


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return "cpu"


def default_workers(n_jobs: int, gpus: int, cores: int | None = None) -> int:
    """One worker per GPU; on CPU one per core (small models train fastest single-threaded), at most one per job."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(n_jobs, gpus if gpus else cores))


class LightningRunner:
    """Trains jobs in `workers` spawned processes; each gets cores/workers torch threads, or its own GPU.

    `workers=0` trains in this process, one job after another: no isolation, but a debugger works and nothing
    is imported twice (the tests use it).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        if not jobs:
            return
        if self.workers == 0:
            for job in jobs:
                if on_start:
                    on_start(job)
                on_result(run_one(job))
            return
        gpus = gpu_count()
        workers = self.workers or default_workers(len(jobs), gpus)
        workers = min(workers, len(jobs))
        cores = os.cpu_count() or 1
        threads = max(1, cores // workers)
        pending = list(jobs)
        while pending:
            pending = self._run_pool(pending, workers, threads, gpus, on_result, on_start)

    def _run_pool(self, jobs: list[Job], workers: int, threads: int, gpus: int, on_result: OnResult,
                  on_start: OnStart | None) -> list[Job]:
        """Run until done or until the pool breaks; return the jobs that never ran (after a worker died)."""
        ctx = mp.get_context("spawn")
        devices = None
        if gpus:
            devices = ctx.Queue()
            for i in range(workers):
                devices.put(i % gpus)
        queue = list(jobs)
        running: dict[Future[RunResult], Job] = {}
        broken = False
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads, devices)) as pool:
            while (queue and not broken) or running:
                while queue and not broken and len(running) < workers:
                    job = queue.pop(0)
                    try:
                        running[pool.submit(run_one, job)] = job
                    except BrokenProcessPool:
                        queue.insert(0, job)
                        broken = True
                        break
                    if on_start:
                        on_start(job)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        # A worker died (killed, out of memory, a crash in native code): this run failed,
                        # the runs still queued go on in a fresh pool.
                        broken = True
                        result = RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0,
                                           "WorkerDied: the worker process exited abruptly (killed, out of "
                                           "memory, or a crash in native code)")
                    except Exception as e:  # e.g. a result that could not be sent back
                        result = RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0,
                                           describe_error(e))
                    on_result(result)
        return queue if broken else []
