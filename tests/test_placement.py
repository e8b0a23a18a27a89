"""The placement plan: which worker gets which GPU and how many threads, for 0, 1 and 4 GPUs and 2 to 64 cores."""

from __future__ import annotations

from collections import Counter

import pytest

from normreg.run.placement import default_runs_per_gpu, plan_placement

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
