"""The placement plan: which worker gets which GPU and how many threads, for 0, 1 and 4 GPUs and 2 to 64 cores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from normreg.execution.placement import (
    Grant,
    Machine,
    Slot,
    assign,
    default_runs_per_gpu,
    fits_machine,
    grant,
    plan_placement,
)

CORES = [2, 3, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("cores", CORES)
def test_no_gpu_one_worker_per_core_single_threaded(cores: int) -> None:
    p = plan_placement(n_jobs=100, cores=cores)
    assert p.workers == cores and p.gpu_slots == 0
    assert all(s.threads == 1 and s.gpu is None for s in p.slots)


@pytest.mark.parametrize("cores", CORES)
def test_few_jobs_get_the_cores_as_threads(cores: int) -> None:
    p = plan_placement(n_jobs=2, cores=cores)
    assert p.workers == 2 and all(s.threads == max(1, cores // 2) for s in p.slots)


@pytest.mark.parametrize("cores", CORES)
def test_one_gpu_every_core_drives_a_run_on_it(cores: int) -> None:
    p = plan_placement(n_jobs=100, cores=cores, gpus=[0])
    assert p.workers == cores and p.gpu_slots == cores == default_runs_per_gpu(cores, 1)
    assert {s.gpu for s in p.slots} == {0} and all(s.threads == 1 for s in p.slots)


@pytest.mark.parametrize("cores", CORES)
def test_four_gpus_shared_evenly(cores: int) -> None:
    p = plan_placement(n_jobs=1000, cores=cores, gpus=[0, 1, 2, 3])
    per_gpu = Counter(s.gpu for s in p.slots)
    assert set(per_gpu) == {0, 1, 2, 3} and len(set(per_gpu.values())) == 1  # every GPU busy, none favoured
    assert p.workers == max(4, cores)  # at least one run per GPU, even on 2 cores
    assert all(s.threads == max(1, cores // p.workers) for s in p.slots)


@pytest.mark.parametrize("cores", CORES)
def test_runs_per_gpu_pins_that_many_and_leaves_the_other_cores_to_cpu_runs(cores: int) -> None:
    p = plan_placement(n_jobs=100, cores=cores, gpus=[0, 1, 2, 3], runs_per_gpu=1, gpu_jobs=50)
    assert p.gpu_slots == 4 and Counter(s.gpu for s in p.slots if s.gpu is not None) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert p.workers == max(4, cores)


def test_devices_chosen_are_the_only_ones_used() -> None:
    p = plan_placement(n_jobs=10, cores=8, gpus=[0, 2], runs_per_gpu=2)
    assert [s.gpu for s in p.slots] == [0, 2, 0, 2, None, None, None, None]


def test_explicit_workers_and_never_more_workers_than_jobs() -> None:
    assert plan_placement(n_jobs=3, cores=64, gpus=[0]).workers == 3
    assert plan_placement(n_jobs=3, cores=64, gpus=[0]).slots[0].threads == 21
    p = plan_placement(n_jobs=100, cores=16, gpus=[0], workers=2)
    assert p.workers == 2 and p.gpu_slots == 2 and all(s.threads == 8 for s in p.slots)
    assert plan_placement(n_jobs=0, cores=4).workers == 0


def test_only_cpu_jobs_pin_nothing() -> None:
    p = plan_placement(n_jobs=10, cores=4, gpus=[0, 1], gpu_jobs=0)
    assert p.gpu_slots == 0 and p.workers == 4


def test_a_few_gpu_jobs_among_cpu_jobs_pin_only_what_they_need() -> None:
    p = plan_placement(n_jobs=20, cores=16, gpus=[0], gpu_jobs=2)
    assert p.gpu_slots == 2 and p.workers == 16


# ------------------------------------------------------------------------------ runs of several devices

GPU_COUNTS = [0, 1, 4, 8]
SIZES = [1, 2, 4]


def _check_never_oversubscribed(held: list[Grant], machine: Machine) -> None:
    assert sum(g.cores for g in held) <= machine.cores
    load = Counter(i for g in held for i in g.gpus)
    for g in held:
        assert len(set(g.gpus)) == len(g.gpus)
        assert len(g.gpus) == (g.cores if machine.gpus else 0)  # N processes: N GPUs (or none on the CPU)
        for i in g.gpus:
            assert i in machine.gpus
            assert load[i] <= (1 if len(g.gpus) > 1 else machine.per_gpu)  # several devices: the GPUs alone


@pytest.mark.parametrize("gpus", GPU_COUNTS)
@pytest.mark.parametrize("size", SIZES)
def test_a_run_of_n_devices_takes_n_gpus_or_n_cores(gpus: int, size: int) -> None:
    machine = Machine(cores=16, gpus=tuple(range(gpus)))
    g = grant(size, machine)
    if gpus and size > gpus:
        assert g is None and not fits_machine(size, machine)
        return
    assert g is not None and g.cores == size and len(g.gpus) == (size if gpus else 0)


def pack(sizes: list[int], machine: Machine, *, gpu: bool = True) -> tuple[Grant | None, ...]:
    """The runs of `sizes` that start together on an idle machine with as many CPU-only workers as runs: each
    one's grant, None for the runs that wait."""
    given = {i: g for _, i, g in assign([(s, gpu) for s in sizes], machine, [], [None] * len(sizes), pinned=False)}
    return tuple(given.get(i) for i in range(len(sizes)))


@pytest.mark.parametrize("gpus", GPU_COUNTS)
@pytest.mark.parametrize("size", SIZES)
def test_packing_one_size_fills_the_machine_exactly(gpus: int, size: int) -> None:
    machine = Machine(cores=16, gpus=tuple(range(gpus)))
    wave = [g for g in pack([size] * 64, machine) if g is not None]
    _check_never_oversubscribed(wave, machine)
    if not gpus:
        assert len(wave) == 16 // size  # every core busy
    elif size == 1:
        assert len(wave) == min(16, gpus * machine.per_gpu)
    else:
        assert len(wave) == gpus // size  # whole GPUs, none idle that a run could use


@pytest.mark.parametrize("gpus", GPU_COUNTS)
def test_runs_of_different_sizes_share_a_machine_and_never_oversubscribe(gpus: int) -> None:
    """A simulation: runs of 1, 2 and 4 devices start and finish at random; at every moment the grants held fit."""
    rng = np.random.default_rng(gpus)
    machine = Machine(cores=16, gpus=tuple(range(gpus)))
    queue = [int(s) for s in rng.choice(SIZES, 300) if fits_machine(int(s), machine)]
    held: list[Grant] = []
    mixed = False
    while queue or held:
        while queue and (g := grant(queue[0], machine, held)) is not None:
            queue.pop(0)
            held.append(g)
        _check_never_oversubscribed(held, machine)
        mixed |= len({g.cores for g in held}) > 1
        assert held, "nothing trains although runs wait"
        held.pop(int(rng.integers(len(held))))
    assert mixed or gpus == 1  # different sizes trained side by side (one GPU takes only one-device runs)


def test_one_device_runs_share_a_gpu_up_to_runs_per_gpu_but_not_with_a_multi_gpu_run() -> None:
    machine = Machine(cores=16, gpus=(0, 1, 2, 3), runs_per_gpu=2)
    assert pack([2, 1, 1, 1, 1, 1], machine) == (Grant((0, 1), 2), Grant((2,), 1), Grant((3,), 1),
                                                Grant((2,), 1), Grant((3,), 1), None)
    assert pack([1, 4], machine) == (Grant((0,), 1), None)  # strict order: the 4-GPU run waits for GPU 0


def test_pinned_workers_take_one_device_runs_on_their_own_gpu_and_cpu_workers_choose_first() -> None:
    machine = Machine(cores=4, gpus=(0, 1), runs_per_gpu=1)
    # workers pinned to GPU 1, CPU only, pinned to GPU 0: the CPU-only one chooses first and passes the GPU runs by
    assert assign([(1, True), (1, False), (1, True)], machine, [], [1, None, 0], pinned=True) == [
        (1, 1, Grant((), 1)), (0, 0, Grant((1,), 1)), (2, 2, Grant((0,), 1))]
    # with no pinned worker at all, a CPU-only worker takes a GPU run and its grant names the GPU
    assert assign([(1, True)], machine, [], [None], pinned=False) == [(0, 0, Grant((0,), 1))]


def test_a_one_device_run_goes_to_another_worker_when_a_multi_gpu_run_holds_the_first_ones_gpu() -> None:
    machine = Machine(cores=4, gpus=(0, 1, 2), runs_per_gpu=2)
    held = [Grant((1, 2), 2)]
    assert assign([(1, True)], machine, held, [1, 0], pinned=True) == [(1, 0, Grant((0,), 1))]


def test_a_run_bigger_than_the_cores_runs_alone() -> None:
    machine = Machine(cores=2)
    assert grant(4, machine) == Grant((), 4)
    assert grant(4, machine, [Grant((), 1)]) is None
    assert pack([2, 1], machine) == (Grant((), 2), None)
    assert grant(1, Machine(cores=4, gpus=(0,)), gpu=False) == Grant((), 1)  # a CPU run on a GPU machine


def test_the_local_executor_starts_a_two_process_run_only_on_two_free_cores() -> None:
    """Two idle workers on 2 cores: a 2-process run takes both cores, so the one-process run behind it waits."""
    from normreg.execution.executor import Job
    from normreg.execution.executors.local import LocalExecutor, _Worker
    from normreg.suite.spec import load_suite

    class Pipe:
        def __init__(self) -> None:
            self.sent: list[object] = []

        def send(self, message: object) -> None:
            self.sent.append(message)

    suite = load_suite(Path(__file__).parents[1] / "data" / "suites" / "ddp.yaml",
                       ["variants={ddp: {model: ddp_models:Net, trainer: {devices: 2}}, one: {model: ddp_models:Net}}"])
    jobs = [Job(suite, "ddp", 0), Job(suite, "one", 0), Job(suite, "one", 1)]
    ex = LocalExecutor()
    ex._workers = [_Worker(Slot(None, 1), None, Pipe(), None) for _ in range(2)]  # type: ignore[arg-type]
    queue, accel = list(jobs), {j.key: "cpu" for j in jobs}
    sizes = {j.key: 2 if j.variant == "ddp" else 1 for j in jobs}
    ex._dispatch(queue, accel, None, Machine(cores=2), sizes)
    assert [w.job for w in ex._workers] == [jobs[0], None] and queue == jobs[1:]
    assert ex._workers[0].grant == Grant((), 2)
    ex._workers[0].job = ex._workers[0].grant = None  # the 2-process run finished
    ex._dispatch(queue, accel, None, Machine(cores=2), sizes)
    assert [w.job for w in ex._workers] == jobs[1:] and not queue  # now two one-process runs side by side
