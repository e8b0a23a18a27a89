"""`--executor slurm`: each (variant, seed) is one Slurm job, submitted through submitit (`pip install
normreg[slurm]`).

Jobs that ask for the same resources go in as one job array. Each job asks for what its run needs: the GPUs of
one run (`--slurm-gpus-per-run`, default the variant's `trainer.devices` when it trains on a GPU), CPUs
(`--slurm-cpus-per-run` per device), memory, a time limit, a partition and an account. submitit pickles the job
(the suite, the variant, the seed) into a folder both sides see (a shared filesystem, as on every Slurm cluster):
`<run dir>/<suite>/slurm/`, where the jobs' logs also go. On the node the job runs the local executor's worker
code (`run_one`) and submitit pickles its `RunResult` back; each result is handed over as its job finishes, and
the pipeline writes it into the run directory at once.

A job the scheduler pre-empts is requeued by submitit (the run starts again; a suite with checkpoints resumes
from its last one). A job that reaches its time limit is requeued up to `--slurm-max-requeues` times, then
recorded as failed; so is a job that ends without a result (cancelled, out of memory, its node lost), with the
scheduler's state (`TIMEOUT`, `OUT_OF_MEMORY`, `NODE_FAIL`, ...) in the message. `cancel()` (SIGINT, SIGTERM)
cancels every job still queued or running (`scancel`); the runs that finished are kept, and `--resume` submits
the rest again.

`--slurm-cluster local` runs the same path (pickling, the task, the result files, cancelling, requeueing on a
pre-emption signal) through submitit's local executor, one process per job on this machine: how the tests run
it, and a dry run before a real cluster.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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

POLL_S = 0.5  # how often the wait for results looks at the jobs and the cancel flag
CLUSTERS = ("slurm", "local")

Worker = Callable[[Job, str], RunResult]


def parse_minutes(text: str) -> float:
    """A time limit in minutes: `90` (minutes, as sbatch reads it), `90s`, `30m`, `2h`, `1d` or `HH:MM:SS`."""
    text = text.strip().lower()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
            value = seconds / 60
        else:
            unit = {"s": 1 / 60, "m": 1.0, "h": 60.0, "d": 1440.0}.get(text[-1:], None)
            value = float(text[:-1]) * unit if unit is not None else float(text)
    except ValueError:
        raise ValueError(f"expected a time limit such as 90 (minutes), 30m, 2h or 01:30:00, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"expected a positive time limit, got {text!r}")
    return value


def parse_cluster(text: str) -> str:
    if text not in CLUSTERS:
        raise ValueError(f"expected --slurm-cluster to be one of {', '.join(CLUSTERS)}, got {text!r}")
    return text


@dataclass(frozen=True)
class SlurmOptions(ExecutorOptions):
    """`--executor slurm`'s options, each a `--slurm-...` option on the command line."""

    partition: str | None = field(default=None, metadata=option(
        "With --executor slurm: the partition to submit to (default: the cluster's default)."))
    account: str | None = field(default=None, metadata=option(
        "With --executor slurm: the account the jobs are charged to."))
    time_min: float = field(default=60.0, metadata=option(
        "With --executor slurm: each job's time limit: 90 (minutes), 30m, 2h, 01:30:00 (default: 60 minutes).",
        flag="--slurm-time", parse=parse_minutes, metavar="DURATION"))
    gpus_per_run: int | None = field(default=None, metadata=option(
        "With --executor slurm: GPUs per run (default: the variant's trainer.devices when it trains on a GPU, "
        "else 0; giving it makes --accelerator auto mean gpu).", min=0))
    cpus_per_run: int = field(default=1, metadata=option(
        "With --executor slurm: CPUs per device of a run (default: 1).", min=1))
    mem_gb: float | None = field(default=None, metadata=option(
        "With --executor slurm: memory per job in GB (default: the partition's).", min=0.001))
    max_running: int | None = field(default=None, metadata=option(
        "With --executor slurm: jobs of one array running at once (default: no limit).", min=1))
    max_requeues: int = field(default=3, metadata=option(
        "With --executor slurm: times a job that reaches its time limit is requeued before it is recorded as "
        "failed (pre-empted jobs are always requeued; default: 3).", min=0))
    cluster: str = field(default="slurm", metadata=option(
        "With --executor slurm: 'slurm' (sbatch), or 'local': the same jobs as local processes through "
        "submitit (a dry run on this machine).", parse=parse_cluster))
    folder: str | None = field(default=None, metadata=option(
        "With --executor slurm: where submitit keeps the jobs' pickles and logs (a folder the nodes see; "
        "default: <run dir>/<suite>/slurm)."))


class SlurmTask:
    """What each job runs on its node: the worker code on the job, its result's device naming the host.
    submitit requeues a job on pre-emption (and on its time limit, a number of times) when the callable has a
    `checkpoint` method: this one resubmits the same task, which starts the run again."""

    def __init__(self, job: Job, accelerator: str, worker: Worker | None = None) -> None:
        self.job, self.accelerator, self.worker = job, accelerator, worker

    def __call__(self) -> RunResult:
        worker = self.worker
        if worker is None:
            from normreg.execution.worker import run_one as worker
        with _scheduler_stops() as stops:
            result = worker(self.job, self.accelerator)
        if stops:  # the worker took the scheduler's stop for the run's own failure: let submitit have it back
            raise stops[0]
        return replace(result, device=f"{result.device or 'unknown'} on {socket.gethostname()}")

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


@contextmanager
def _scheduler_stops() -> Iterator[list[BaseException]]:
    """Keep what submitit's pre-emption handler raises (SIGUSR2 from Slurm: the requeue's exit, or the error that
    says the job will not be requeued). The worker code catches every exception of a run, SystemExit included,
    and would report the scheduler's stop as a failed run; the task raises it again once the worker returns."""
    signum = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)
    previous = signal.getsignal(signum)
    stops: list[BaseException] = []
    if not callable(previous):
        yield stops
        return

    def handler(num: int, frame: Any) -> None:
        try:
            previous(num, frame)
        except BaseException as e:
            stops.append(e)
            raise

    signal.signal(signum, handler)
    try:
        yield stops
    finally:
        signal.signal(signum, previous)


@register("slurm")
class SlurmExecutor(ExecutorBase):
    """Runs jobs as Slurm jobs through submitit; see the module docstring. `worker(job, accelerator)` is what each
    job runs (the local executor's `run_one` by default; tests give their own, picklable)."""

    trains = True
    Options = SlurmOptions
    options: SlurmOptions

    def __init__(self, options: ExecutorOptions | None = None, *, worker: Worker | None = None) -> None:
        super().__init__(options)
        self.worker = worker
        self.submitted: dict[tuple[str, str, int], Any] = {}  # the submitit jobs of the current call, by job key

    @property
    def device(self) -> str:
        """`cpu` unless the runs ask for GPUs; the GPU model is the cluster's (each result says where it ran)."""
        if self.options.accelerator == "gpu" or (self.options.accelerator == "auto" and self.options.gpus_per_run):
            return "cuda"
        return "cpu"

    def close(self) -> None:
        """Nothing is held between calls: the jobs of a call have all ended (or been cancelled) when it returns."""

    # ------------------------------------------------------------------------------------ resources

    def accelerator(self, job: Job) -> str:
        """"gpu" or "cpu": the variant's own `trainer.accelerator` wins over --accelerator; `auto` is gpu when
        --slurm-gpus-per-run asks for GPUs (normreg cannot see the cluster's nodes from here)."""
        return job_accelerator(job, self.options.accelerator, bool(self.options.gpus_per_run))

    def resources(self, job: Job) -> dict[str, Any]:
        """The submitit parameters of one job: the run's processes (`suite.model.world_size`: what the worker
        starts) as GPUs or cores, the CPUs for them, memory, time, partition, account."""
        size = world_size(job.suite.variant(job.variant).trainer)
        o = self.options
        gpus = (o.gpus_per_run or size) if self.accelerator(job) == "gpu" else 0
        if o.cluster == "local":  # submitit's LocalExecutor: its own parameter names; the time-limit signal 10%
            # ahead of the limit, as Slurm is asked to send it
            return {"timeout_min": o.time_min, "signal_delay_s": max(1, int(o.time_min * 6)),
                    "gpus_per_node": gpus, "tasks_per_node": 1}
        params: dict[str, Any] = {"nodes": 1, "tasks_per_node": 1, "cpus_per_task": o.cpus_per_run * max(gpus, size),
                                  "timeout_min": math.ceil(o.time_min),  # sbatch --time counts whole minutes
                                  "name": f"normreg-{job.suite.name}"}
        if gpus:
            params["gpus_per_node"] = gpus
        if o.mem_gb is not None:
            params["mem_gb"] = o.mem_gb
        params.update({f"slurm_{k}": v for k, v in (("partition", o.partition), ("account", o.account),
                                                   ("array_parallelism", o.max_running)) if v is not None})
        return params

    def _folder(self, job: Job) -> Path:
        if self.options.folder is not None:
            return Path(self.options.folder)
        if job.run_dir is not None:
            return job.run_dir / "slurm"
        return Path(".normreg-slurm")

    def _executor(self, folder: Path, params: dict[str, Any]) -> Any:
        try:
            import submitit
        except ImportError:
            raise InputError("--executor slurm needs submitit, which is not installed: pip install "
                             "'normreg[slurm]' (or pip install submitit)") from None
        if self.options.cluster == "local":
            ex = submitit.LocalExecutor(folder=folder, max_num_timeout=self.options.max_requeues)
        else:
            ex = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                       slurm_max_num_timeout=self.options.max_requeues)
        ex.update_parameters(**params)
        return ex

    # ------------------------------------------------------------------------------------ running

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        if not jobs or self._cancelled:
            return
        groups: dict[tuple[Path, tuple[tuple[str, Any], ...]], list[Job]] = {}
        for job in jobs:
            params = self.resources(job)
            groups.setdefault((self._folder(job), tuple(sorted(params.items()))), []).append(job)
        in_flight: dict[tuple[str, str, int], tuple[Job, Any]] = {}
        self.submitted = {}
        try:
            for (folder, params), group in groups.items():
                if self._cancelled:
                    break
                folder.mkdir(parents=True, exist_ok=True)
                ex = self._executor(folder, dict(params))
                tasks = [SlurmTask(job, self.accelerator(job), self.worker) for job in group]
                try:
                    with ex.batch():  # one job array per group of equal resources
                        handles = [ex.submit(task) for task in tasks]
                except Exception as e:  # sbatch refused (a partition that does not exist, no account, ...)
                    raise RunError(f"could not submit the jobs to {self.options.cluster}: {_first_line(e)}; check "
                                   "--slurm-partition, --slurm-account and the limits asked for") from None
                for job, handle in zip(group, handles):
                    in_flight[job.key] = (job, handle)
                    self.submitted[job.key] = handle
                    if on_start:
                        on_start(job)
            while in_flight and not self._cancelled:
                self._collect(in_flight, on_result)
                if in_flight:
                    time.sleep(POLL_S)
        finally:
            if in_flight:  # cancelled (or an error): what finished is kept, the rest is cancelled
                self._collect(in_flight, on_result)
                for _, handle in in_flight.values():
                    try:
                        handle.cancel(check=False)
                    except Exception:  # noqa: BLE001 - a job that ended meanwhile, scancel unreachable
                        pass

    def _collect(self, in_flight: dict[tuple[str, str, int], tuple[Job, Any]], on_result: OnResult) -> None:
        for key, (job, handle) in list(in_flight.items()):
            if handle.done():
                del in_flight[key]
                on_result(self._result(job, handle))

    def _result(self, job: Job, handle: Any) -> RunResult:
        """The job's result; a job that returned none is that run's failure, with the scheduler's state."""
        try:
            result = handle.result()
        except Exception as e:  # noqa: BLE001 - submitit's UncompletedJobError, FailedJobError, a lost pickle
            state = _state(handle)
            why = _first_line(e)
            if "timed-out too many times" in why:
                why = f"it reached its time limit ({self.options.time_min:g} min) after " \
                      f"{self.options.max_requeues} requeue(s); raise --slurm-time or --slurm-max-requeues"
            return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0,
                             f"SlurmJobFailed: job {handle.job_id} ended {state}: {why}", device="unknown")
        if not isinstance(result, RunResult):
            return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0,
                             f"WorkerError: Slurm job {handle.job_id} returned {type(result).__name__}, not a run "
                             "result", device="unknown")
        return result


def _state(handle: Any) -> str:
    try:
        return str(handle.state)
    except Exception:  # noqa: BLE001 - sacct unreachable
        return "UNKNOWN"


def _first_line(e: BaseException) -> str:
    """The line that says why: submitit's own reason (`Job not requeued because: ...`), else the last line of the
    job's traceback (the exception), else the first."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    for line in lines:
        if "Job not requeued because" in line:
            return line[line.index("Job not requeued because"):]
    if lines and "with trace" in lines[0]:
        return lines[-1]
    return lines[0] if lines else type(e).__name__
