"""The executor seam: what runs the training jobs, wherever they run.

`normreg run` hands every (variant, seed) job of every suite to one `Executor` and learns about each as it starts
and as it finishes. It never cares where a job ran: in a local worker process (`local`, normreg/run/executors/
local.py), on a Ray cluster (`ray`), or nowhere at all (`normreg.run.fake.FakeRunner`, scripted results for
tests). Each executor is one file in `normreg/run/executors/` that registers itself with `@register("name")`
(`EXECUTORS`, a `normreg.registry.Registry`);
`--executor NAME` on the command line, the README and the error for an unknown name take their choices from the
registry.

The contract, which every executor and its tests keep:

- `run(jobs, on_result, on_start)` runs every job and returns when each has been reported, or when `cancel()` was
  called. It calls `on_start(job)` as a job starts and `on_result(result)` exactly once per job that started, as
  it finishes, in completion order, on the calling thread (the caller writes each result to disk there, so a
  result handed over is a result kept). A run that raises, runs out of memory or whose worker dies is a failed
  `RunResult` with its message; `run` itself never raises for a failed run. Jobs may run in any order and in
  parallel; each job's result is the same wherever it runs (seeded), only `RunResult.device` says where.
- `cancel()` may be called from a signal handler or from a callback: it only sets a flag. `run` then drops the
  jobs not yet started, ends the running ones within seconds (their runs are neither reported nor written), still
  reports any run that had already finished, and returns. The caller (the pipeline) raises `Interrupted`.
- `close()` releases what the executor holds (worker processes, a Ray instance it started). `run` may be called
  several times before `close()` (staged seeds run stage by stage): long-lived workers pay their imports once.
  Executors are context managers that close on exit.
- `trains` is False for an executor that builds no model (the fake): the up-front import checks and the attached
  audit then have nothing to look at. `name` is the registered name.
- `device` is the kind of device the runs will train on, known before any run (`cpu`, `cuda (NVIDIA H200)`):
  it chooses per-device baselines before training. Each `RunResult.device` then says where that run really ran.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from normreg.choices import check_choice
from normreg.errors import NormregError
from normreg.registry import Registry

if TYPE_CHECKING:  # types only: the CLI imports this module to list the executors, and must start fast
    from normreg.run.results import RunResult
    from normreg.suite.spec import Suite


@dataclass(frozen=True)
class Job:
    """One training run: a suite's variant with one seed."""

    suite: Suite
    variant: str
    seed: int
    run_dir: Path | None = None  # where the run may write files (only when the suite enables loggers/checkpoints)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.suite.name, self.variant, self.seed)


OnResult = Callable[["RunResult"], None]
OnStart = Callable[["Job"], None]


def plan_jobs(suite: Suite, run_dir: Path | None = None, seeds: Sequence[int] | None = None) -> list[Job]:
    """Seed-major order (every variant at seed 0, then seed 1, ...), so a partial run stays balanced."""
    return [Job(suite, v.name, s, run_dir) for s in (seeds if seeds is not None else suite.seeds)
            for v in suite.variants]


@runtime_checkable
class Executor(Protocol):
    """Runs training jobs and reports each as it starts and finishes; see the module docstring for the contract."""

    name: str
    trains: bool
    device: str

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        """Run every job; `on_result` once per started job, in completion order. Never raises for a failed run."""

    def warm_up(self) -> None:
        """Start what is slow to start (worker processes importing torch), so that it overlaps the caller's
        up-front checks; called once the suites are loaded, before those checks. May do nothing."""

    def cancel(self) -> None:
        """Drop queued jobs and end running ones; safe to call from a signal handler."""

    def close(self) -> None:
        """Release workers; the executor cannot run jobs afterwards."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


@dataclass(frozen=True)
class ExecutorOptions:
    """The command line's executor settings; each executor uses those that apply to it.

    `workers`: worker processes (None: the placement default; 0: in this process). `runs_per_gpu`: runs sharing
    one GPU (None: the placement default). `devices`: GPU indices to use (None: every visible GPU).
    `accelerator`: "cpu", "gpu" or "auto", for every variant that does not set `trainer.accelerator` itself.
    `address`: a cluster to join (Ray), else one is started locally.
    """

    workers: int | None = None
    runs_per_gpu: int | None = None
    devices: tuple[int, ...] | None = None
    accelerator: str = "auto"
    address: str | None = None

    def __post_init__(self) -> None:
        check_choice("--accelerator", self.accelerator, ACCELERATORS)  # for every executor, before any starts


ACCELERATORS = ("auto", "cpu", "gpu")


class Interrupted(NormregError):
    """SIGINT or SIGTERM stopped a run; finished runs are on disk. Exit code 128 + the signal (130, 143)."""

    def __init__(self, signum: int, run_dir: Path | None = None) -> None:
        self.signum = signum
        self.run_dir = run_dir
        name = signal.Signals(signum).name
        where = f"; finished runs are in {run_dir}" if run_dir else ""
        super().__init__(f"stopped by {name}{where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def cancel_on_signals(executor: Executor) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM cancel `executor` instead of killing this process; yields the list the
    signals received are appended to. Outside the main thread (where handlers cannot be set) nothing changes."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        executor.cancel()

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield received
        return
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------- the registry

E = TypeVar("E")
EXECUTORS: Registry[Callable[[ExecutorOptions], Executor]] = Registry("executor", package="normreg.run.executors")


def register(name: str) -> Callable[[E], E]:
    """Class decorator: make an executor available as `--executor NAME`. Its constructor takes ExecutorOptions."""
    return EXECUTORS.register(name)


def executor_names() -> list[str]:
    return sorted(EXECUTORS.names())


def make_executor(name: str, options: ExecutorOptions | None = None) -> Executor:
    """The executor registered as `name`, built with `options`; an unknown name is an InputError listing them."""
    return EXECUTORS.get(name)(options or ExecutorOptions())
