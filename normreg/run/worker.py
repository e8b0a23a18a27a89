"""One training run, and the worker process that runs them: what every executor runs for each job.

`run_one` seeds, builds, fits and tests one (variant, seed) with Lightning and turns whatever happens into a
`RunResult`, recording the device it ran on. `worker_main` is a long-lived worker process: it pays its imports
once, pins itself to its GPU before CUDA starts, and runs the jobs its parent sends until told to stop or until
the parent dies (it then ends itself: no orphan keeps training).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from normreg.run.executor import Job
from normreg.run.results import RunResult


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


def run_one(job: Job, accelerator: str = "auto") -> RunResult:
    """Seed, build, fit and test one variant; any exception (a CUDA out-of-memory included) or NaN becomes a failed
    RunResult. `accelerator` is used unless the variant's own `trainer.accelerator` says otherwise."""
    import pytorch_lightning

    from normreg.suite.targets import build, importable

    _quiet_lightning()
    start = time.perf_counter()
    suite, variant = job.suite, job.suite.variant(job.variant)
    history: dict[str, list[float]] = {}
    options: dict[str, Any] = {"accelerator": accelerator, "devices": 1, "deterministic": True, **variant.trainer}
    trainer: Any = None

    def failed(message: str) -> RunResult:
        return RunResult(suite.name, job.variant, job.seed, "failed", {}, time.perf_counter() - start, message,
                         history, device_label(trainer, options["accelerator"]))

    try:
        importable([suite.directory])
        pytorch_lightning.seed_everything(job.seed, workers=True, verbose=False)
        dm = build(suite, variant.data, "data") if variant.data is not None else None
        model = build(suite, variant.model, "model")
        pl = _trainer_module(model)
        pl.seed_everything(job.seed, workers=True, verbose=False)
        hist = _history_callback(pl)
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
        _release_gpu_memory()
        return failed(describe_error(e))
    metrics: dict[str, float] = {}
    for out in outputs or []:
        for k, v in out.items():
            metrics[k] = float(v)
    step = "test_step" if evaluate == trainer.test else "validation_step"
    return result_from_metrics(job, metrics, time.perf_counter() - start, history, step,
                               device_label(trainer, options["accelerator"]))


def device_label(trainer: Any, accelerator: str = "auto") -> str:
    """Where a run ran: `cpu`, or `cuda:N (name)` with N the GPU's index as this machine numbers it."""
    import torch

    device = getattr(getattr(trainer, "strategy", None), "root_device", None)
    if device is None:  # the run failed before a Trainer existed: where it would have run
        wants_cpu = str(accelerator).lower() == "cpu"
        device = torch.device("cuda", 0) if torch.cuda.is_available() and not wants_cpu else torch.device("cpu")
    if device.type != "cuda":
        return device.type
    index = device.index or 0
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    physical = visible[index] if index < len(visible) else str(index)
    return f"cuda:{physical} ({torch.cuda.get_device_name(index)})"


def _release_gpu_memory() -> None:
    """After a failed run (an out-of-memory above all), give the cached GPU memory back for the next run."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def result_from_metrics(job: Job, metrics: dict[str, float], duration: float,
                        history: Mapping[str, list[float]] | None = None, step: str = "test_step",
                        device: str = "") -> RunResult:
    """A finished run's result: failed when a suite metric is missing or not finite, else ok."""
    suite = job.suite

    def failed(message: str) -> RunResult:
        return RunResult(suite.name, job.variant, job.seed, "failed", metrics, duration, message, history or {},
                         device)

    missing = [m.name for m in suite.metrics if m.name not in metrics]
    if missing:
        return failed(f"MissingMetric: the model logged {', '.join(sorted(metrics)) or 'nothing'} in its {step}, "
                      f"but not {', '.join(missing)}; log it with self.log('{missing[0]}', value)")
    bad = [m.name for m in suite.metrics if not math.isfinite(metrics[m.name])]
    if bad:
        return failed(f"NonFiniteMetric: {', '.join(f'{n}={metrics[n]}' for n in bad)}")
    return RunResult(suite.name, job.variant, job.seed, "ok", metrics, duration, None, history or {}, device)


# ------------------------------------------------------------------------------- the worker process


def _die_with_parent(lifeline: Any) -> None:
    """End this process when the parent dies, whatever it is doing: the parent-death signal where Linux has it
    (it fires when the process that forked us dies), and a thread that waits on a pipe only the parent holds
    open (EOF means the parent is gone, however it died)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="normreg-lifeline", daemon=True).start()


def worker_main(conn: Any, lifeline: Any, env: Mapping[str, str], cwd: str, threads: int) -> None:
    """A long-lived worker: receive (job, accelerator), send back its RunResult, until None or the parent dies.

    `env` is the parent's environment with this worker's CUDA_VISIBLE_DEVICES, set before anything touches
    CUDA; `threads` its share of the cores for torch.
    """
    _die_with_parent(lifeline)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    import torch

    torch.set_num_threads(threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job, accelerator = message
        result = run_one(job, accelerator)
        try:
            conn.send(result)
        except (EOFError, OSError):
            return
