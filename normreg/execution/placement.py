"""Where each worker runs: which GPU it is pinned to (if any) and how many torch threads it gets. Pure functions.

The default keeps both the GPUs and the cores busy: one worker per core (small models train fastest on one
thread each), at most one per job, and every worker pinned to a GPU, the GPUs shared round robin
(`runs_per_gpu` = cores / GPUs). With `--runs-per-gpu N` only N workers per GPU are pinned; the other workers are
CPU-only and take the runs that asked for the CPU. A run that wants a GPU only ever goes to a pinned worker, so
every run of a variant sees the same kind of device and same-seed pairs stay comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Slot:
    """One worker process: `gpu` is the device index it sees as its only GPU (None: CPU only)."""

    gpu: int | None
    threads: int


@dataclass(frozen=True)
class Placement:
    slots: tuple[Slot, ...]

    @property
    def workers(self) -> int:
        return len(self.slots)

    @property
    def gpu_slots(self) -> int:
        return sum(1 for s in self.slots if s.gpu is not None)


def default_runs_per_gpu(cores: int, gpus: int) -> int:
    """Runs sharing one GPU by default: the cores divided among the GPUs (each run needs a core to drive it)."""
    return max(1, cores // max(1, gpus))


def plan_placement(n_jobs: int, cores: int, gpus: Sequence[int] = (), *, gpu_jobs: int | None = None,
                   workers: int | None = None, runs_per_gpu: int | None = None) -> Placement:
    """The workers for `n_jobs` jobs, `gpu_jobs` of which want a GPU (default: all of them when there are GPUs).

    `gpus`: the device indices to use. `workers` (default: one per core, at least one per GPU slot) and
    `runs_per_gpu` (default: `default_runs_per_gpu`) as on the command line. Never more workers than jobs;
    threads are the cores shared evenly among the workers, at least one.
    """
    if n_jobs < 1:
        return Placement(())
    cores = max(1, cores)
    gpu_jobs = n_jobs if gpu_jobs is None else gpu_jobs
    if not gpus or gpu_jobs == 0:
        n = min(n_jobs, workers or cores)
        return Placement(tuple(Slot(None, max(1, cores // n)) for _ in range(n)))
    per_gpu = runs_per_gpu or default_runs_per_gpu(cores, len(gpus))
    pinned = len(gpus) * per_gpu
    n = min(n_jobs, workers or max(pinned, cores))
    pinned = min(pinned, n, gpu_jobs if n_jobs > gpu_jobs else n)
    threads = max(1, cores // n)
    return Placement(tuple(Slot(gpus[i % len(gpus)] if i < pinned else None, threads) for i in range(n)))


# ------------------------------------------------------------------------------ runs of several devices


@dataclass(frozen=True)
class Machine:
    """What runs are packed onto: `cores`, the GPU indices `gpus`, and `runs_per_gpu` one-device runs that may
    share one GPU (None: `default_runs_per_gpu`)."""

    cores: int
    gpus: tuple[int, ...] = ()
    runs_per_gpu: int | None = None

    @property
    def per_gpu(self) -> int:
        return self.runs_per_gpu or default_runs_per_gpu(self.cores, len(self.gpus))


@dataclass(frozen=True)
class Grant:
    """What one run holds while it trains: `gpus` (none for a CPU run) and `cores`, one per process."""

    gpus: tuple[int, ...]
    cores: int


def grant(size: int, machine: Machine, held: Sequence[Grant] = (), *, gpu: bool = True) -> Grant | None:
    """The devices a run of `size` processes takes now, given the grants `held` by the runs training; None when
    it must wait. Never oversubscribes: a run takes `size` cores, and on the GPU `size` GPUs; a one-device run
    shares its GPU with at most `per_gpu` - 1 other one-device runs, a run of several devices holds its GPUs
    alone (its ranks would otherwise fight one-device runs for memory). The one exception, so that every run
    can run: a run needing more cores than the machine has starts when nothing else trains. A run needing more
    GPUs than the machine has never fits (check with `fits_machine` first)."""
    size = max(1, size)
    free_cores = machine.cores - sum(g.cores for g in held)
    if size > free_cores and (held or size <= machine.cores):
        return None
    if not gpu or not machine.gpus:
        return Grant((), size)
    load = {i: 0 for i in machine.gpus}
    alone: set[int] = set()
    for g in held:
        for i in g.gpus:
            load[i] = load.get(i, 0) + 1
            if len(g.gpus) > 1:
                alone.add(i)
    if size == 1:
        shared = [i for i in machine.gpus if i not in alone and load[i] < machine.per_gpu]
        return Grant((min(shared, key=lambda i: (load[i], machine.gpus.index(i))),), 1) if shared else None
    empty = [i for i in machine.gpus if load[i] == 0]
    return Grant(tuple(empty[:size]), size) if len(empty) >= size else None


def fits_machine(size: int, machine: Machine, *, gpu: bool = True) -> bool:
    """Whether a run of `size` processes can ever train here: on the GPU it needs `size` GPUs."""
    return not (gpu and machine.gpus) or size <= len(machine.gpus)


def assign(queue: Sequence[tuple[int, bool]], machine: Machine, held: Sequence[Grant],
           idle: Sequence[int | None], *, pinned: bool) -> list[tuple[int, int, Grant]]:
    """Which idle workers take which queued runs now, as (index in `idle`, index in `queue`, grant), in the order
    they start: the local executor's dispatch. `queue`: each run's (size, wants a GPU); `held`: the grants of the
    runs training; `idle`: each idle worker's GPU (None: CPU only); `pinned`: whether any worker has a GPU (then
    a GPU run never goes to a CPU-only worker, so every run of a variant sees the same kind of device).

    CPU-only workers choose first, each the first queued run it can take. A one-device GPU run trains on the
    worker's own GPU; when a run of several devices holds that GPU, another worker may take the run. Otherwise
    strict order: once a run must wait for cores or GPUs, the runs behind it wait too, so a big run is never
    starved by small ones behind it."""
    held = list(held)
    left = list(range(len(queue)))
    out: list[tuple[int, int, Grant]] = []
    for w in sorted(range(len(idle)), key=lambda k: idle[k] is not None):
        own = idle[w]
        for i in left:
            size, gpu = queue[i]
            if gpu and own is None and pinned:
                continue
            if gpu and size == 1 and own is not None:
                given = grant(1, replace(machine, gpus=(own,)), held)
                if given is None:
                    break
            else:
                given = grant(size, machine, held, gpu=gpu)
                if given is None:
                    return out
            left.remove(i)
            held.append(given)
            out.append((w, i, given))
            break
    return out
