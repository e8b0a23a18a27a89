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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from normreg.execution.executor import Job
from normreg.execution.failure import describe_error, describe_failure
from normreg.execution.lifeline import die_with_parent
from normreg.execution.results import RunResult

__all__ = ["TRAINER_OPTIONS", "describe_error", "flavour_of", "result_from_metrics", "run_one", "time_limit",
           "timed_out", "worker_main"]

# What every run's Trainer gets before the suite's own `trainer` options (which win); `normreg repro` uses it too.
TRAINER_OPTIONS: dict[str, Any] = {"accelerator": "auto", "devices": 1, "deterministic": True}


# ---------------------------------------------------------------------------------- inside a worker


def _quiet_lightning() -> None:
    """Lightning's own chatter ("GPU available", "TPU available", the logger tip, "`Trainer.fit` stopped") off;
    the user's prints, warnings and loggers untouched."""
    import logging
    import warnings

    # Each flavour sets its loggers to INFO when it is imported, and the user's module may import one only when
    # it is built: so this runs again once the model is built, before the Trainer exists.
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*_pytree.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*log_every_n_steps.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")


def flavour_of(obj: Any) -> Any:
    """The Lightning flavour `obj` (a class or an instance) was written against: the `pytorch_lightning` or the
    `lightning.pytorch` module, or None."""
    import importlib

    cls = obj if isinstance(obj, type) else type(obj)
    for base in cls.__mro__:
        top = (base.__module__ or "").split(".")[0]
        if top == "pytorch_lightning":
            return importlib.import_module("pytorch_lightning")
        if top == "lightning":
            return importlib.import_module("lightning.pytorch")
    return None


def _trainer_module(model: Any) -> Any:
    """The Lightning flavour of a built model: its Trainer, seeding and helpers are the ones used on it."""
    pl = flavour_of(model)
    if pl is None:
        raise TypeError(f"{type(model).__qualname__} is not a LightningModule")
    return pl


def _seeding_module(suite: Any, variant: Any) -> Any:
    """The flavour to seed with before the model exists: the model target's class when it is a class, else
    `pytorch_lightning` (a dependency of normreg). Both flavours' `seed_everything` seed the same generators."""
    import importlib

    from normreg.suite.targets import resolve

    factory = resolve(suite, variant.model)
    found = flavour_of(factory) if isinstance(factory, type) else None
    return found or importlib.import_module("pytorch_lightning")


def _history_callback(pl: Any) -> Any:
    class History(pl.Callback):  # type: ignore[misc,name-defined]
        """Per-epoch scalar metrics, for learning curves in reports; in a checkpoint, these and the random number
        generators' states, so that a resumed run's curves are whole and its next epoch draws what it would have."""

        def __init__(self) -> None:
            self.values: dict[str, list[float]] = {}

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            for k, v in trainer.callback_metrics.items():
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    continue
                self.values.setdefault(k, []).append(x)

        def state_dict(self) -> dict[str, Any]:  # called as a checkpoint is saved, after on_train_epoch_end
            return {"values": {k: list(v) for k, v in self.values.items()}, "rng": _rng_state()}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            # Restored here, not at the next epoch's start: a resumed fit makes its first data iterator (the draw
            # that shuffles the epoch) before on_train_epoch_start; its sanity check draws inside isolate_rng.
            self.values = {k: [float(x) for x in v] for k, v in state_dict["values"].items()}
            _restore_rng(state_dict["rng"])

    return History()


def _rng_state() -> dict[str, Any]:
    """torch's (CPU and every CUDA device's), numpy's and Python's global generators, as tensors, lists and
    numbers only: what `torch.load(weights_only=True)` accepts."""
    import random

    import numpy as np
    import torch

    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda,
            "numpy": [torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": [int(version), list(internal), gauss_next]}


def _restore_rng(state: Mapping[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _checkpointing(pl: Any, job: Job, options: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """With `checkpoint:` in the suite (and a run directory), add the callback that saves the run's state every
    `every_n_epochs` epochs (the newest only) to the Trainer `options`. Returns the keyword arguments that make
    `Trainer.fit` continue from the run's last checkpoint and the epochs it had finished, or ({}, None) to train
    from epoch 0 (after removing what a finished or earlier run left there)."""
    import inspect
    import shutil

    from normreg.execution.rundir import checkpoint_dir, last_checkpoint

    if job.suite.checkpoint is None or job.run_dir is None:
        return {}, None
    directory = checkpoint_dir(job.run_dir, job.variant, job.seed)
    found = last_checkpoint(directory)
    if found is None:
        shutil.rmtree(directory, ignore_errors=True)
    options["callbacks"] = [*(options.get("callbacks") or []), pl.callbacks.ModelCheckpoint(
        dirpath=str(directory), filename="epoch{epoch}", auto_insert_metric_name=False,
        every_n_epochs=job.suite.checkpoint.every_n_epochs, save_top_k=1, save_on_train_epoch_end=True)]
    if options.get("enable_checkpointing") is False:  # normreg's default; the callback needs it on
        options["enable_checkpointing"] = True
    if found is None:
        return {}, None
    fit: dict[str, Any] = {"ckpt_path": str(found[0])}
    if "weights_only" in inspect.signature(pl.Trainer.fit).parameters:
        # normreg wrote it, into this run's directory; a model's saved hyperparameters may hold any picklable
        # value, which torch's weights-only loading refuses
        fit["weights_only"] = False
    return fit, found[1]


@contextmanager
def noting_sigint() -> Iterator[list[int]]:
    """Note a real SIGINT (Ctrl-C) or SIGTERM in a list while the block runs, stop the run at once with a
    KeyboardInterrupt (after the handler in place, the executor's cancel, has run), and restore the handlers
    afterwards: Lightning leaves SIGINT ignored after a KeyboardInterrupt, and a KeyboardInterrupt raised by user
    code must be told apart from one the user asked for. SIGINT is left alone where it is ignored (a worker
    process: its parent decides), SIGTERM where no Python handler takes it (a worker ends on it at once)."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        before = previous[signum]
        if callable(before) and before is not signal.default_int_handler:
            before(signum, frame)
        if len(seen) == 1:  # once: the same Ctrl-C may arrive twice (the terminal's, and forwarded)
            raise KeyboardInterrupt

    for s, before in previous.items():
        if (s == signal.SIGINT and before != signal.SIG_IGN) or (s == signal.SIGTERM and callable(before)):
            signal.signal(s, handler)
    try:
        yield seen
    finally:
        for s, before in previous.items():
            signal.signal(s, before if before is not None else signal.SIG_DFL)


def run_one(job: Job, accelerator: str = "auto", gpus: Sequence[str] | None = None) -> RunResult:
    """Seed, build, fit and test one variant; any exception (a CUDA out-of-memory included) or NaN becomes a failed
    RunResult. `accelerator` is used unless the variant's own `trainer.accelerator` says otherwise. The result
    records torch's thread count: CPU values are bit-identical for a seed only at the same count. A run that
    asks for several devices runs in that many rank processes (normreg/execution/ddp.py), on `gpus` (their names as
    CUDA_VISIBLE_DEVICES gives them; None: the GPUs this process sees)."""
    import torch

    from normreg.execution import ddp
    from normreg.execution.rundir import finish_checkpoints
    from normreg.suite.model import world_size

    if world_size(job.suite.variant(job.variant).trainer) > 1 and ddp.RANK_ENV not in os.environ:
        return ddp.launch(job, accelerator, gpus=gpus)
    result = _train(job, accelerator)  # a stop (KeyboardInterrupt) or a time limit leaves its checkpoints
    finish_checkpoints(job.suite, job.run_dir, job.variant, job.seed)
    return replace(result, threads=torch.get_num_threads())


def _train(job: Job, accelerator: str) -> RunResult:
    import importlib

    from normreg.execution import ddp
    from normreg.suite.targets import build, importable

    _quiet_lightning()
    start = time.perf_counter()
    suite, variant = job.suite, job.suite.variant(job.variant)
    history: dict[str, list[float]] = {}
    options: dict[str, Any] = {**TRAINER_OPTIONS, "accelerator": accelerator, **variant.trainer}
    if ddp.RANK_ENV in os.environ:  # a rank that normreg launched: Lightning joins it, never starts processes
        options["strategy"] = ddp.popen_strategy(options.get("strategy"))
    trainer: Any = None

    def failed(message: str, trace: str) -> RunResult:
        return RunResult(suite.name, job.variant, job.seed, "failed", {}, time.perf_counter() - start, message,
                         history, device_label(trainer, options["accelerator"]), trace)

    with noting_sigint() as interrupted:
        try:
            importable([suite.directory])
            _seeding_module(suite, variant).seed_everything(job.seed, workers=True, verbose=False)
            dm = build(suite, variant.data, "data") if variant.data is not None else None
            model = build(suite, variant.model, "model")
            pl = _trainer_module(model)
            _quiet_lightning()
            pl.seed_everything(job.seed, workers=True, verbose=False)
            hist = _history_callback(pl)
            options["callbacks"] = [*(options.get("callbacks") or []), hist]
            if job.run_dir is not None:
                options.setdefault("default_root_dir", str(job.run_dir / f"{job.variant}-seed{job.seed}"))
            fit, resumed_from = _checkpointing(pl, job, options)
            trainer = pl.Trainer(**options)
            trainer.fit(model, datamodule=dm, **fit)
            history = hist.values
            is_overridden = importlib.import_module(f"{pl.__name__}.utilities.model_helpers").is_overridden
            evaluate = trainer.test if is_overridden("test_step", model) else trainer.validate
            outputs = evaluate(model, datamodule=dm, verbose=False)
        except Exception as e:
            _release_gpu_memory()
            failure = describe_failure(e, suite.directory)
            return failed(failure.description, failure.traceback)
        except (SystemExit, KeyboardInterrupt) as e:
            # User code that calls sys.exit() or raises KeyboardInterrupt fails its run, never the whole process
            # (Lightning turns a KeyboardInterrupt into sys.exit(1)). A real Ctrl-C still stops everything.
            if interrupted:
                raise KeyboardInterrupt from None
            _release_gpu_memory()
            failure = describe_failure(e, suite.directory)
            return failed(failure.description, failure.traceback)
    metrics: dict[str, float] = {}
    for out in outputs or []:
        for k, v in out.items():
            metrics[k] = float(v)
    step = "test_step" if evaluate == trainer.test else "validation_step"
    result = result_from_metrics(job, metrics, time.perf_counter() - start, history, step,
                                 device_label(trainer, options["accelerator"]))
    return replace(result, resumed_from_epoch=resumed_from)


def timed_out(job: Job, duration: float, device: str = "") -> RunResult:
    """The failed result of a run ended at its suite's `run_timeout`."""
    from normreg.suite.building import format_duration

    limit = format_duration(job.suite.run_timeout or duration)
    return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, duration,
                     f"TimedOut: timed out after {limit} (run_timeout); the run was ended and the other runs went on",
                     device=device)


class RunTimedOut(BaseException):
    """Raised in a run trained in this process when its time limit passes (BaseException: user code's
    `except Exception` must not swallow it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise `RunTimedOut` in the main thread once `seconds` have passed (SIGALRM; POSIX). Python code is
    interrupted where it is; a loop inside native code only when it returns to Python."""
    if seconds is None or not hasattr(signal, "setitimer") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunTimedOut

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    die_with_parent()

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
        job, accelerator, *placed = message  # placed: the GPUs of a run of several devices
        result = run_one(job, accelerator, placed[0] if placed else None)
        try:
            conn.send(result)
        except (EOFError, OSError):
            return
