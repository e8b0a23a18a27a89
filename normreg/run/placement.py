"""Where each worker runs: which GPU it is pinned to (if any) and how many torch threads it gets. Pure functions.

The default keeps both the GPUs and the cores busy: one worker per core (small models train fastest on one
thread each), at most one per job, and every worker pinned to a GPU, the GPUs shared round robin
(`runs_per_gpu` = cores / GPUs). With `--runs-per-gpu N` only N workers per GPU are pinned; the other workers are
CPU-only and take the runs that asked for the CPU. A run that wants a GPU only ever goes to a pinned worker, so
every run of a variant sees the same kind of device and same-seed pairs stay comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
