"""`--executor local`: long-lived worker processes on this machine, placed on its GPUs and cores.

Workers are forked from a server process that has already imported torch and Lightning (Linux), so each pays
no import; they live until `close()`, across the stages of staged suites. Each worker runs one job at a time
and sends its result back over its own pipe; the parent waits on every pipe and every worker's death at once,
so a worker that dies (killed, out of memory, a crash in native code) fails only its own run and is replaced.
`cancel()` (SIGINT, SIGTERM) ends the running workers within seconds; a result already sent is still reported.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from normreg.errors import InputError
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
from normreg.execution.failure import describe_exit
from normreg.execution.placement import Grant, Machine, Placement, Slot, assign, fits_machine, plan_placement
from normreg.execution.results import RunResult
from normreg.execution.supervised import note_phase
from normreg.execution.worker import RunTimedOut, run_one, time_limit, timed_out, worker_main
from normreg.suite.model import world_size

PRELOAD = ["normreg.execution.forkserver_exit", "torch", "pytorch_lightning", "normreg.execution.worker"]
_POLL_S = 0.2  # how often the parent looks at the cancel flag while waiting on workers


def _context() -> Any:
    """Forkserver where there is one (Linux, macOS): workers fork from a process that imported torch once."""
    if sys.platform != "win32" and "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


@contextmanager
def _main_not_rerun() -> Iterator[None]:
    """Start processes without multiprocessing re-running the user's `__main__` in them, and ignoring SIGINT.

    A worker or fork server started from a script (`python go.py`) imports that script again as `__mp_main__`
    (spawn and forkserver do, so that functions defined in it can be unpickled): a script without an
    `if __name__ == "__main__":` guard would call `normreg.run` again inside every worker. normreg's workers need
    nothing from `__main__` (a job names its targets by module), so the script's file and spec are hidden while
    a process starts, as they are for an interactive session."""
    import threading

    main = sys.modules.get("__main__")
    # Ctrl-C reaches the whole process group: a fork server still importing torch would print a traceback. It
    # starts with SIGINT ignored (inherited across exec, and Python keeps it so); this process decides.
    sigint = None
    if threading.current_thread() is threading.main_thread():
        sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    hidden = {k: main.__dict__.pop(k) for k in ("__file__",) if main is not None and k in main.__dict__}
    spec = getattr(main, "__spec__", None)
    if main is not None and spec is not None:
        main.__spec__ = None
    try:
        yield
    finally:
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)
        if main is not None:
            main.__dict__.update(hidden)
            if spec is not None:
                main.__spec__ = spec


def _forkserver_pid() -> int | None:
    """The running fork server's process id, or None. multiprocessing has no public accessor; a version without
    this attribute gives None, and warm_up then leaves the server to end with this process."""
    from multiprocessing import forkserver

    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)


def _stop_forkserver() -> None:
    """End the fork server at once, even in the middle of its imports: multiprocessing's own (test) method closes
    the server's pipe and waits, which would wait out the imports, so the server is killed first."""
    from multiprocessing import forkserver

    pid = _forkserver_pid()
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    forkserver._forkserver._stop()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (so a worker can be pinned to one)."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def usable_cores() -> int:
    """The cores this process may run on (taskset, cgroup cpusets), not all the machine has: more torch threads
    than cores only slows every run down."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Worker:
    slot: Slot
    process: Any
    conn: Connection
    lifeline: Connection  # the parent's end; the worker ends itself when this closes
    job: Job | None = None
    started: float = 0.0  # time.monotonic() when its job was sent
    grant: Grant | None = None  # the cores and GPUs its run holds (several for a run of several devices)


def parse_devices(text: str) -> tuple[int, ...]:
    """`--devices 0,2`: GPU indices separated by commas."""
    try:
        devices = tuple(int(d) for d in text.split(",") if d.strip())
    except ValueError:
        devices = ()
    if not devices or any(d < 0 for d in devices):
        raise ValueError(f"expected --devices as GPU indices separated by commas (e.g. 0,2), got {text!r}")
    return devices


@dataclass(frozen=True)
class LocalOptions(ExecutorOptions):
    """`--executor local`'s options. `workers`: worker processes (None: the placement default; 0: in this
    process). `runs_per_gpu`: runs sharing one GPU (None: the placement default). `devices`: GPU indices to use
    (None: every visible GPU)."""

    workers: int | None = field(default=None, metadata=option(
        "Worker processes (default: one per core, at most one per run; 0: in this process).", flag="--workers",
        min=0))
    runs_per_gpu: int | None = field(default=None, metadata=option(
        "Runs sharing one GPU (default: cores / GPUs, so every core drives a run).", flag="--runs-per-gpu", min=1))
    devices: tuple[int, ...] | None = field(default=None, metadata=option(
        "GPUs to use, by index, e.g. 0,2 (default: all visible).", flag="--devices", parse=parse_devices))


@register("local")
class LocalExecutor(ExecutorBase):
    """Trains jobs in worker processes on this machine (`workers=0`: one after another in this process)."""

    trains = True
    Options = LocalOptions
    options: LocalOptions

    def __init__(self, options: ExecutorOptions | None = None) -> None:
        super().__init__(options)
        self._workers: list[_Worker] = []
        self._ctx: Any = None
        self._warm_unused = False  # the fork server was started by warm_up and no worker came from it yet

    # -- the Executor protocol

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        if not jobs:
            return
        gpus = self._gpus()
        accel = {job.key: job_accelerator(job, self.options.accelerator, bool(gpus)) for job in jobs}
        if self.options.workers == 0:
            self._run_here(jobs, accel, on_result, on_start)
            return
        placement = plan_placement(len(jobs), usable_cores(), range(len(gpus)),
                                   gpu_jobs=sum(a == "gpu" for a in accel.values()), workers=self.options.workers,
                                   runs_per_gpu=self.options.runs_per_gpu)
        self._ensure_workers(placement, gpus)
        machine = Machine(max(usable_cores(), placement.workers), tuple(range(len(gpus))), self.options.runs_per_gpu
                          or (placement.gpu_slots // len(gpus) if gpus else None))
        sizes = {job.key: world_size(job.suite.variant(job.variant).trainer) for job in jobs}
        for job in jobs:
            if not fits_machine(sizes[job.key], machine, gpu=accel[job.key] == "gpu"):
                raise InputError(f"suite '{job.suite.name}', variant '{job.variant}' asks for {sizes[job.key]} "
                                 f"devices (trainer.devices), but {len(gpus)} GPU(s) are given to this run; lower "
                                 "trainer.devices or give more GPUs (--devices)")
        queue = list(jobs)
        while not self._cancelled and (queue or self._busy()):
            self._dispatch(queue, accel, on_start, machine, sizes)
            self._collect(on_result)
        if self._cancelled:
            self._stop_busy(on_result)

    def warm_up(self) -> None:
        """Start the fork server, so that its imports of torch and Lightning overlap the up-front checks (which
        import them in this process; importing both took 7 s on an idle 2-core machine). `close` stops it if no run
        came, so a suite refused by the checks leaves no process importing torch behind."""
        if self.options.workers == 0 or self._ctx is not None:
            return
        self._ctx = _context()
        if self._ctx.get_start_method() == "forkserver" and _forkserver_pid() is None:
            from multiprocessing import forkserver

            with _main_not_rerun():
                forkserver.ensure_running()
            # ours to stop if unused; a server that was already running may be serving another executor
            self._warm_unused = _forkserver_pid() is not None

    def close(self) -> None:
        if self._warm_unused:
            _stop_forkserver()
            self._warm_unused = False
        self._release_workers()

    def _release_workers(self) -> None:
        for w in self._workers:
            if w.job is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        self._end([w for w in self._workers], grace_s=2.0)
        self._workers = []

    # Entering starts nothing: the fork server (which imports torch and Lightning) starts with `warm_up`, once the
    # suites have loaded, or with the first run; a suite refused while loading costs no import at all.

    @property
    def device(self) -> str:
        """`cpu`, or `cuda (<name of the first GPU used>)`: the device kind runs train on unless they ask for CPU."""
        gpus = self._gpus()
        if not gpus:
            return "cpu"
        import torch

        index = self.options.devices[0] if self.options.devices else 0
        return f"cuda ({torch.cuda.get_device_name(index)})"

    # -- placement and workers

    def _gpus(self) -> list[str]:
        if self.options.accelerator == "cpu":
            return []
        gpus = visible_gpus()
        if self.options.devices is None:
            return gpus
        bad = [d for d in self.options.devices if not 0 <= d < len(gpus)]
        if bad:
            raise InputError(f"--devices {','.join(map(str, self.options.devices))}: this machine has "
                             f"{len(gpus)} GPU(s) visible, numbered 0..{len(gpus) - 1}" if gpus else
                             "--devices was given but no GPU is visible here (torch.cuda.is_available() is False)")
        return [gpus[d] for d in self.options.devices]

    def _ensure_workers(self, placement: Placement, gpus: list[str]) -> None:
        """Keep the workers already running when they fit the new placement; start the ones missing."""
        if [w.slot for w in self._workers] == list(placement.slots):
            return
        self._release_workers()
        self._gpu_names = gpus
        self._workers = [self._start(slot) for slot in placement.slots]

    def _start(self, slot: Slot) -> _Worker:
        if self._ctx is None:
            self._ctx = _context()
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = self._gpu_names[slot.gpu] if slot.gpu is not None else ""
        env["OMP_NUM_THREADS"] = str(slot.threads)
        parent, child = self._ctx.Pipe()
        keep, lifeline = self._ctx.Pipe(duplex=False)  # (reader, writer): the worker reads, the parent holds
        process = self._ctx.Process(target=worker_main, args=(child, keep, env, os.getcwd(), slot.threads),
                                    name="normreg-worker", daemon=True)
        with _main_not_rerun():
            process.start()
        self._warm_unused = False
        child.close()
        keep.close()
        return _Worker(slot, process, parent, lifeline)

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.job is not None]

    def _dispatch(self, queue: list[Job], accel: dict[tuple[str, str, int], str], on_start: OnStart | None,
                  machine: Machine, sizes: dict[tuple[str, str, int], int]) -> None:
        """Start the queued jobs that idle workers can take now (placement.assign decides which, and with what
        cores and GPUs), removing them from `queue`."""
        idle = [w for w in self._workers if w.job is None]
        held = [x.grant for x in self._workers if x.grant is not None]
        picks = assign([(sizes[j.key], accel[j.key] == "gpu") for j in queue], machine, held,
                       [w.slot.gpu for w in idle], pinned=any(x.slot.gpu is not None for x in self._workers))
        jobs, taken = list(queue), {i for _, i, _ in picks}
        queue[:] = [j for i, j in enumerate(jobs) if i not in taken]
        for k, i, given in picks:
            w, job = idle[k], jobs[i]
            w.job, w.grant = job, given
            w.started = time.monotonic()
            if on_start:
                on_start(job)
            names = [self._gpu_names[g] for g in given.gpus] if len(given.gpus) > 1 else None
            try:
                w.conn.send((job, accel[job.key], names))
            except OSError:
                pass  # the worker died: _collect sees its end and fails this job alone

    def _collect(self, on_result: OnResult, timeout: float = _POLL_S) -> None:
        busy = self._busy()
        if not busy:
            return
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
        for w in busy:
            if w.conn in ready or w.process.sentinel in ready:
                self._receive(w, on_result)
            elif w.job is not None and w.job.suite.run_timeout is not None and \
                    time.monotonic() - w.started > w.job.suite.run_timeout:
                self._time_out(w, on_result)

    def _time_out(self, w: _Worker, on_result: OnResult) -> None:
        """A run past its suite's `run_timeout`: its worker is ended (a run stuck in native code included) and
        replaced, the run recorded failed; the other runs go on."""
        job = w.job
        assert job is not None and job.suite.run_timeout is not None
        if w.conn.poll():  # it finished meanwhile
            self._receive(w, on_result)
            return
        self._end([w], grace_s=0.0)
        device = "cpu" if w.slot.gpu is None else f"cuda:{self._gpu_names[w.slot.gpu]}"
        self._workers[self._workers.index(w)] = self._start(w.slot)
        on_result(timed_out(job, time.monotonic() - w.started, device))

    def _receive(self, w: _Worker, on_result: OnResult) -> None:
        job = w.job
        assert job is not None
        try:
            if not w.conn.poll():
                if w.process.is_alive():
                    return
                raise EOFError
            result: RunResult = w.conn.recv()
        except (EOFError, OSError):
            result = self._died(w, job)
            self._replace(w)
        else:
            w.job = w.grant = None
        on_result(result)

    def _died(self, w: _Worker, job: Job) -> RunResult:
        w.process.join(1.0)
        code = w.process.exitcode
        how = describe_exit(code)
        return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0,
                         f"WorkerDied: the worker process running this run ended abruptly ({how}: killed, out of "
                         "memory, or a crash in native code); the other runs went on",
                         device="cpu" if w.slot.gpu is None else f"cuda:{self._gpu_names[w.slot.gpu]}")

    def _replace(self, w: _Worker) -> None:
        self._end([w], grace_s=0.0)
        fresh = self._start(w.slot)
        self._workers[self._workers.index(w)] = fresh

    def _stop_busy(self, on_result: OnResult) -> None:
        """After cancel: report what already finished, end the workers still training."""
        busy = self._busy()
        for w in busy:
            if w.conn.poll():
                self._receive(w, on_result)
        self._end(self._busy(), grace_s=1.0)
        self._workers = [w for w in self._workers if w.job is None]

    @staticmethod
    def _end(workers: list[_Worker], grace_s: float) -> None:
        """Terminate, wait up to `grace_s`, then kill; close the pipes (which also ends any worker we missed)."""
        for w in workers:
            if w.process.is_alive() and (w.job is not None or grace_s == 0.0):
                w.process.terminate()
        deadline = time.monotonic() + grace_s
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
            for c in (w.conn, w.lifeline):
                c.close()

    # -- in this process

    def _run_here(self, jobs: Sequence[Job], accel: dict[tuple[str, str, int], str], on_result: OnResult,
                  on_start: OnStart | None) -> None:
        """`--workers 0`: one job after another in this process; a cancel takes effect after the current run."""
        for job in jobs:
            if self._cancelled:
                return
            if on_start:
                on_start(job)
            note_phase(f"run {job.variant} seed {job.seed} of suite '{job.suite.name}', trained in normreg's own "
                       "process (--workers 0)")
            start = time.monotonic()
            try:
                with time_limit(job.suite.run_timeout):
                    result = run_one(job, accel[job.key])
            except RunTimedOut:
                result = timed_out(job, time.monotonic() - start, "cpu" if accel[job.key] == "cpu" else "")
            on_result(result)
