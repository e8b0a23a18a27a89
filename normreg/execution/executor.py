"""The executor seam: what runs the training jobs, wherever they run.

`normreg run` hands every (variant, seed) job of every suite to one `Executor` and learns about each as it starts
and as it finishes. It never cares where a job ran: in a local worker process (`local`, normreg/execution/executors/
local.py), on a Ray cluster (`ray`), or nowhere at all (`normreg.execution.fake.FakeRunner`, scripted results for
tests). Each executor is one file in `normreg/execution/executors/` that registers itself with `@register("name")`
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
  Executors are context managers that close on exit (`ExecutorBase` has that, once, for all of them).
- Options: each executor declares its own as a frozen dataclass, its `Options` (a subclass of `ExecutorOptions`,
  which holds `accelerator`), and its constructor takes an instance. The command line makes one option of each
  field (`cli_options`), on every command that trains; `make_executor(name, options)` builds any executor from
  its Options or from a mapping of field names (the API, the pytest plugin, bisect's child process).
- `trains` is False for an executor that builds no model (the fake): the up-front import checks and the attached
  audit then have nothing to look at. `name` is the registered name.
- `device` is the kind of device the runs will train on, known before any run (`cpu`, `cuda (NVIDIA H200)`):
  it chooses per-device baselines before training. Each `RunResult.device` then says where that run really ran.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, get_type_hints, runtime_checkable

from normreg.choices import check_choice
from normreg.errors import ExitCode, InputError, NormregError
from normreg.registry import Registry

if TYPE_CHECKING:  # types only: the CLI imports this module to list the executors, and must start fast
    from normreg.execution.results import RunResult
    from normreg.suite.model import Suite


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


def option(help: str, *, flag: str | None = None, min: float | None = None,
           parse: Callable[[str], Any] | None = None, metavar: str | None = None) -> dict[str, Any]:
    """The metadata of an executor option's dataclass field: its help, and how the command line spells it.

    `flag`: the option's name (default `--<executor>-<field>`, e.g. `--slurm-partition`; a flag shared by
    several executors, such as `--runs-per-gpu`, is one option that each of them reads). `min`: the smallest
    number allowed. `parse`: turns the option's text into the field's value (default: by the field's type:
    int, float or str).
    """
    return {"help": help, "flag": flag, "min": min, "parse": parse, "metavar": metavar}


@dataclass(frozen=True)
class ExecutorOptions:
    """The options every executor takes; an executor with options of its own declares a frozen subclass as its
    `Options` (`LocalOptions`: --workers, --runs-per-gpu, --devices; `RayOptions`: --ray-address, ...), and the
    command line makes one option per field (see `option`).

    `accelerator`: "cpu", "gpu" or "auto", for every variant that does not set `trainer.accelerator` itself.
    """

    accelerator: str = field(default="auto", metadata=option(
        "cpu, gpu or auto, for every variant whose trainer does not set its own accelerator.", flag="--accelerator"))

    def __post_init__(self) -> None:
        check_choice("--accelerator", self.accelerator, ACCELERATORS)  # for every executor, before any starts


ACCELERATORS = ("auto", "cpu", "gpu")


def job_accelerator(job: Job, default: str, have_gpus: bool) -> str:
    """"gpu" or "cpu": what the job will train on, for every executor. The variant's own `trainer.accelerator` wins
    over `default` (--accelerator); `auto` is gpu where the executor has GPUs to give (`have_gpus`)."""
    wanted = str(job.suite.variant(job.variant).trainer.get("accelerator", default)).lower()
    if wanted in ("gpu", "cuda"):
        return "gpu"
    return "gpu" if wanted == "auto" and have_gpus else "cpu"


class Interrupted(NormregError):
    """SIGINT or SIGTERM stopped a run; finished runs are on disk. Exit code 128 + the signal (130, 143)."""

    def __init__(self, signum: int, run_dir: Path | None = None) -> None:
        self.signum = signum
        self.run_dir = run_dir
        name = signal.Signals(signum).name
        from normreg.execution.rundir import kept_in

        where = f"; {kept_in(run_dir)}" if run_dir else " before any run finished; nothing was kept"
        super().__init__(f"stopped by {name}{where}")

    @property
    def exit_code(self) -> ExitCode:  # type: ignore[override]
        return ExitCode.stopped_by(self.signum)


RECEIVED: list[int] = []  # every SIGINT/SIGTERM this process's handlers saw: a KeyboardInterrupt without one is
# user code's own doing (raised at import or in __init__), a failed run, never a stop the user asked for


class Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM outside training (loading, importing, the up-front check, judging): raised where the
    process was, as Ctrl-C raises KeyboardInterrupt, so that every `finally` runs on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stopping(signum: int) -> bool:
    """The signals normreg handles: SIGTERM always, SIGINT unless this process was started with it ignored (a
    background job of a non-interactive shell: POSIX shells ignore SIGINT there so that Ctrl-C meant for the
    foreground does not reach it; `kill -TERM` stops it)."""
    return signum == signal.SIGTERM or signal.getsignal(signal.SIGINT) != signal.SIG_IGN


def stop_on_signals() -> None:
    """From now on (main thread only), SIGINT and SIGTERM raise `Stop` in this process, once: any later one (a
    second Ctrl-C, or the same one forwarded by the supervising process, or one after training was cancelled) is
    ignored, so the clean-up is never interrupted into a traceback. Training replaces these handlers with
    `cancel_on_signals` while it runs."""

    def handler(signum: int, frame: object) -> None:
        if RECEIVED:  # a stop is under way (Ctrl-C reaches this process twice: from the terminal, and forwarded)
            return
        RECEIVED.append(signum)
        for s in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(s) is handler:
                signal.signal(s, signal.SIG_IGN)
        raise Stop(signum)

    for s in (signal.SIGINT, signal.SIGTERM):
        if _stopping(s):
            signal.signal(s, handler)


@contextmanager
def cancel_on_signals(executor: Executor) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM cancel `executor` instead of killing this process; yields the list the
    signals received are appended to. Outside the main thread (where handlers cannot be set) nothing changes."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        RECEIVED.append(signum)
        executor.cancel()

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM) if _stopping(s)}
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
EXECUTORS: Registry[Callable[[ExecutorOptions], Executor]] = Registry("executor", package="normreg.execution.executors")


class ExecutorBase:
    """What every executor shares, written once: its options (an instance of its `Options` class, the defaults
    when none are given), a context manager that closes on exit, and a `warm_up` that starts nothing.
    `cancel` sets `_cancelled`, which `run` watches (a signal handler calls it: it only sets a flag). Subclasses set
    `trains`, give `device`, and implement `run` and, where they hold something, `close`."""

    name: ClassVar[str]
    trains: ClassVar[bool] = True
    Options: ClassVar[type[ExecutorOptions]] = ExecutorOptions

    def __init__(self, options: ExecutorOptions | None = None) -> None:
        self.options = options_for(self.name, options, self.Options)
        self._cancelled = False

    def cancel(self) -> None:
        """Stop as soon as possible: no new run starts, and `run` returns once the runs in flight are dealt with."""
        self._cancelled = True

    def warm_up(self) -> None:
        """Nothing to start ahead of the runs."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self: E) -> E:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def register(name: str) -> Callable[[E], E]:
    """Class decorator: make an executor available as `--executor NAME`. Its constructor takes an instance of its
    `Options` class (ExecutorOptions where it declares none); the command line makes an option of each field."""
    return EXECUTORS.register(name)


def executor_names() -> list[str]:
    return sorted(EXECUTORS.names())


def options_class(name: str) -> type[ExecutorOptions]:
    """The options dataclass of the executor `name` (ExecutorOptions where it declares none)."""
    return getattr(EXECUTORS.get(name), "Options", ExecutorOptions)


def options_for(name: str, given: ExecutorOptions | Mapping[str, Any] | None,
                cls: type[ExecutorOptions] | None = None) -> ExecutorOptions:
    """`given` as the options of the executor `name`: its own Options instance as it is; a mapping of field names
    to values (the API's, the pytest plugin's, bisect's JSON), or another executor's options (their shared fields,
    such as `accelerator`), made into one. A field the executor does not have is an InputError naming the ones
    it has; a field left at its default is dropped silently."""
    cls = cls or options_class(name)
    if given is None:
        return cls()
    if isinstance(given, cls):
        return given
    if isinstance(given, ExecutorOptions):
        default = type(given)()
        given = {f.name: getattr(given, f.name) for f in fields(given)
                 if getattr(given, f.name) != getattr(default, f.name)}
    own = [f.name for f in fields(cls)]
    unknown = sorted(k for k in given if k not in own)
    if unknown:
        raise InputError(f"the executor {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(own)}")
    return cls(**given)


def option_values(options: ExecutorOptions) -> dict[str, Any]:
    """The fields of `options` that differ from their defaults, as JSON can hold them (a tuple as a list): what
    `options_for` makes the same options from again, in another process."""
    default = type(options)()
    return {f.name: list(v) if isinstance(v, tuple) else v for f in fields(options)
            if (v := getattr(options, f.name)) != getattr(default, f.name)}


def make_executor(name: str, options: ExecutorOptions | Mapping[str, Any] | None = None) -> Executor:
    """The executor registered as `name`, built with `options` (see `options_for`); the one factory every entry
    point uses (`run`, `plan`, `bisect`, the API, the pytest plugin). An unknown name is an InputError listing
    the executors."""
    part = EXECUTORS.get(name)
    return part(options_for(name, options, getattr(part, "Options", ExecutorOptions)))


# ---------------------------------------------------------------------------------- options on a command line


@dataclass(frozen=True)
class CliOption:
    """One command-line option made from the executors' option fields: `flag` (`--runs-per-gpu`), `param` (its
    Python name), the value's type, and which executors' fields it sets, as (executor, field) pairs."""

    flag: str
    param: str
    kind: type
    help: str
    min: float | None
    metavar: str | None
    parse: Callable[[str], Any] | None
    fields: tuple[tuple[str, str], ...]


def _kind(hint: Any) -> type:
    """int, float or str: the type of an option field (`int | None` is int)."""
    args = [a for a in getattr(hint, "__args__", (hint,)) if a is not type(None)]
    return args[0] if len(args) == 1 and args[0] in (int, float, str, bool) else str


def cli_options() -> list[CliOption]:
    """Every executor's options as command-line options, in the order of the executors' names and their fields;
    a flag several executors declare is one option."""
    made: dict[str, CliOption] = {}
    for name in executor_names():
        cls = options_class(name)
        hints = get_type_hints(cls)
        for f in fields(cls):
            meta = f.metadata
            flag = meta.get("flag") or f"--{name}-{f.name.replace('_', '-')}"
            held = made.get(flag)
            if held is not None:
                made[flag] = CliOption(**{**held.__dict__, "fields": (*held.fields, (name, f.name))})
                continue
            parse = meta.get("parse")
            made[flag] = CliOption(flag, flag[2:].replace("-", "_"), str if parse else _kind(hints[f.name]),
                                   meta.get("help", ""), meta.get("min"), meta.get("metavar"), parse,
                                   ((name, f.name),))
    return list(made.values())


def options_from_cli(name: str, given: Mapping[str, Any]) -> ExecutorOptions:
    """The options of the executor `name` from the command line's values ({param: value}, only those given). An
    option of another executor is an InputError: it would otherwise be ignored without a word."""
    values: dict[str, Any] = {}
    for opt in cli_options():
        if opt.param not in given or given[opt.param] is None:
            continue
        mine = [f for n, f in opt.fields if n == name]
        if not mine:
            owners = " or ".join(f"--executor {n}" for n, _ in opt.fields)
            raise InputError(f"{opt.flag} is an option of {owners}; this command uses --executor {name}")
        value = given[opt.param]
        if opt.parse is not None and isinstance(value, str):
            try:
                value = opt.parse(value)
            except ValueError as e:  # a message that names the option is shown as it is
                raise InputError(str(e) if opt.flag in str(e) else f"{opt.flag}: {e}") from None
        if opt.min is not None and value < opt.min:
            raise InputError(f"{opt.flag}: expected at least {opt.min:g}, got {value}")
        values[mine[0]] = value
    return options_for(name, values)
