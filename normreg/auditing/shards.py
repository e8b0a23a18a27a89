"""Each process's shard of a run on several processes, seen in one process: what the audit needs to compare them.

A variant whose `trainer` asks for `devices: N` (N > 1) trains in N processes (normreg/execution/ddp.py), and each
process reads its own shard of the data. How a user's datamodule picks its shard is its own business; the three
ways a process learns who it is are all given to it here, for process r of N, without starting a process:

* the Trainer: the datamodule's (and the LightningModule's) `trainer` is a `RankTrainer`, which answers
  `global_rank`, `local_rank`, `node_rank`, `world_size`, `num_devices`, `num_nodes` and `is_global_zero` as the
  Trainer of that process would (and `datamodule`, `lightning_module`);
* torch.distributed: a process group of N in which this process is rank r (torch's `fake` backend, which runs
  no communication), so `dist.get_rank()` and `dist.get_world_size()` answer r and N;
* the environment: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE` and `NODE_RANK`, as torchrun and
  normreg's own launcher set them.

Then, as the Trainer does when `use_distributed_sampler` is on (Lightning's default), each map-style loader whose
sampler is not already a DistributedSampler gets one for rank r of N, shuffled when the loader was. A datamodule
that needs more of the Trainer than the attributes above cannot be sharded here: the error says which attribute.
The audit fetches every variant's ordinary first batches the same way, as rank 0 of one process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from normreg.suite.model import world_size

# Collective operations as the dispatcher sees them (c10d::allreduce_, c10d::allgather_, ...).
_COLLECTIVE_NAMESPACE = "c10d"


class Unshardable(Exception):
    """The shards of a run on several processes cannot be seen without starting the processes; says why."""


@dataclass(frozen=True)
class Processes:
    """What a variant's Trainer options ask for when they ask for several processes."""

    world_size: int
    strategy: str
    sync_batchnorm: bool  # Lightning converts every BatchNorm to SyncBatchNorm
    distributed_sampler: bool  # Lightning gives each map-style loader a DistributedSampler

    @classmethod
    def of(cls, trainer: Mapping[str, Any]) -> Processes | None:
        """The processes `trainer` asks for, or None for one process (normreg's launcher starts N processes for
        any strategy when `devices` times `num_nodes` is N > 1)."""
        n = world_size(trainer)
        if n < 2:
            return None
        sampler = trainer.get("use_distributed_sampler", trainer.get("replace_sampler_ddp", True))
        return cls(n, str(trainer.get("strategy", "auto")), bool(trainer.get("sync_batchnorm", False)),
                   bool(sampler))


# The one process of a plain run: the audit fetches every variant's first batches as its rank 0 (a datamodule that
# reads `self.trainer.global_rank` works as it does under a Trainer).
ONE_PROCESS = Processes(1, "auto", False, False)


@dataclass(frozen=True)
class RankTrainer:
    """Stands in for the Trainer of process `global_rank` of `world_size` while the audit fetches that process's
    data. It has only the attributes a datamodule reads to choose its shard."""

    global_rank: int
    world_size: int
    num_nodes: int = 1
    datamodule: Any = None
    lightning_module: Any = None

    @property
    def num_devices(self) -> int:
        return max(1, self.world_size // self.num_nodes)

    @property
    def local_rank(self) -> int:
        return self.global_rank % self.num_devices

    @property
    def node_rank(self) -> int:
        return self.global_rank // self.num_devices

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0


def _fake_backend() -> bool:
    """Whether torch's `fake` process-group backend (no communication, any rank of any size) can be used."""
    try:
        import torch.distributed as dist
        from torch.testing._internal.distributed import fake_pg  # noqa: F401 - registers the backend
    except Exception:  # noqa: BLE001 - a torch without it: the shards are still seen, collectives are not
        return False
    return dist.is_available()


@contextlib.contextmanager
def process_group(rank: int, size: int) -> Iterator[bool]:
    """torch.distributed initialised as process `rank` of `size` (the `fake` backend: collectives run no
    communication and leave tensors as they are). Yields False, and initialises nothing, when a process group
    already exists or the backend is missing."""
    import torch.distributed as dist

    if not _fake_backend() or dist.is_initialized():
        yield False
        return
    from torch.testing._internal.distributed.fake_pg import FakeStore

    try:
        dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=size)
    except Exception:  # noqa: BLE001 - a torch whose fake backend refuses: rank by Trainer and environment only
        yield False
        return
    try:
        yield True
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def as_rank(model: Any, dm: Any, rank: int, procs: Processes) -> Iterator[None]:
    """While active, `model` and `dm` see themselves as process `rank` of `procs.world_size` (see the module)."""
    local = procs.world_size  # one node: normreg launches every rank on one machine
    env = {"RANK": rank, "WORLD_SIZE": procs.world_size, "LOCAL_RANK": rank % local, "LOCAL_WORLD_SIZE": local,
           "NODE_RANK": rank // local}
    saved_env = {k: os.environ.get(k) for k in env}
    stand_in = RankTrainer(rank, procs.world_size, datamodule=dm, lightning_module=model)
    attached: list[tuple[Any, Any]] = []
    try:
        os.environ.update({k: str(v) for k, v in env.items()})
        for obj in (dm, model):
            if obj is not None:
                # A LightningModule's `trainer` is a property that raises when none is attached; `_trainer` holds it.
                before = obj._trainer if hasattr(obj, "_trainer") else getattr(obj, "trainer", None)
                obj.trainer = stand_in
                attached.append((obj, before))
        with process_group(rank, procs.world_size):
            yield
    finally:
        for obj, before in attached:
            obj.trainer = before
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def distributed(loaders: Any, rank: int, procs: Processes) -> Any:
    """The loaders as the Trainer hands them to process `rank`: each map-style DataLoader without a
    DistributedSampler gets one (shuffled when the loader shuffled; seed as Lightning sets it), in a dict or list
    of loaders too. Iterable datasets and loaders with their own DistributedSampler are left as they are."""
    if isinstance(loaders, Mapping):
        return {k: distributed(v, rank, procs) for k, v in loaders.items()}
    if isinstance(loaders, (list, tuple)):
        return type(loaders)(distributed(v, rank, procs) for v in loaders)
    if not isinstance(loaders, DataLoader) or isinstance(loaders.dataset, IterableDataset):
        return loaders
    if isinstance(loaders.sampler, DistributedSampler):
        return loaders
    if loaders.batch_sampler is not None and type(loaders.batch_sampler) is not BatchSampler:
        raise Unshardable(f"the train loader has its own batch sampler ({type(loaders.batch_sampler).__name__}), "
                          "which the Trainer's DistributedSampler would wrap in ways not reproduced here; set "
                          "`use_distributed_sampler: false` and shard it yourself to have it checked")
    batches = loaders.batch_sampler
    inner = batches.sampler if isinstance(batches, BatchSampler) else loaders.sampler
    if not isinstance(inner, (RandomSampler, SequentialSampler)):
        raise Unshardable(f"the train loader has its own sampler ({type(inner).__name__}), which the Trainer "
                          "would replace with a DistributedSampler")
    sampler = DistributedSampler(loaders.dataset, num_replicas=procs.world_size, rank=rank,
                                 shuffle=isinstance(inner, RandomSampler),
                                 seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))
    size, drop = (batches.batch_size, batches.drop_last) if isinstance(batches, BatchSampler) else \
        (loaders.batch_size, loaders.drop_last)
    return DataLoader(loaders.dataset, batch_size=size, sampler=sampler, num_workers=0,
                      collate_fn=loaders.collate_fn, drop_last=drop)


def rank_batches(model: Any, make_data: Callable[[], Any], procs: Processes, seed: int) -> list[Any]:
    """The first training batch of every process: for each rank, a freshly built datamodule (as each process
    builds its own; `make_data` returns None for the model's own loaders), set up and asked for its train loader
    as that rank, with the Trainer's DistributedSampler when `procs.distributed_sampler`."""
    from normreg.auditing.steps import seed_all, train_batch

    out = []
    for rank in range(procs.world_size):
        seed_all(seed)
        dm = make_data()
        with as_rank(model, dm, rank, procs):
            seed_all(seed)
            reshard = (lambda loaders, r=rank: distributed(loaders, r, procs)) if procs.distributed_sampler else None
            out.append(train_batch(model, dm, reshard=reshard))
    return out


def concatenate(batches: list[Any]) -> Any:
    """One batch holding every process's rows in rank order (tensors joined along their first dimension):
    what the processes' BatchNorm layers see together when their statistics are taken over every process."""
    first = batches[0]
    if isinstance(first, Tensor):
        if not all(isinstance(b, Tensor) and b.shape[1:] == first.shape[1:] for b in batches):
            raise Unshardable("the processes' batches hold tensors of different shapes, which cannot be joined")
        return torch.cat(batches) if first.dim() else first
    if isinstance(first, Mapping):
        if not all(isinstance(b, Mapping) and b.keys() == first.keys() for b in batches):
            raise Unshardable("the processes' batches are dicts with different keys")
        return {k: concatenate([b[k] for b in batches]) for k in first}
    if isinstance(first, (list, tuple)):
        if not all(isinstance(b, type(first)) and len(b) == len(first) for b in batches):
            raise Unshardable("the processes' batches have different structures")
        parts = [concatenate([b[i] for b in batches]) for i in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
    if not all(b == first for b in batches):
        raise Unshardable(f"the processes' batches hold different {type(first).__name__} values, which cannot "
                          "be joined")
    return first


def rows(batch: Any) -> int | None:
    """Rows of a batch: the first dimension of its first tensor."""
    from normreg.auditing.record import first_tensor

    t = first_tensor(batch)
    return int(t.shape[0]) if t is not None and t.dim() else None


class Watch:
    """Context manager: the inputs of `modules` (by name) on every call while active (only calls for which
    `when(module)` holds, when given), and which of them issued a collective operation (an all-reduce of their
    statistics, say) inside their own forward."""

    def __init__(self, modules: Mapping[str, nn.Module], when: Callable[[nn.Module], bool] | None = None) -> None:
        self.modules = dict(modules)
        self.when = when
        self.inputs: dict[str, list[Tensor]] = {n: [] for n in self.modules}
        self.reducing: set[str] = set()
        self._stack: list[str] = []
        self._handles: list[Any] = []
        self._mode: Any = None

    def __enter__(self) -> Watch:
        from torch.utils._python_dispatch import TorchDispatchMode

        watch = self

        class _Collectives(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                if getattr(func, "namespace", None) == _COLLECTIVE_NAMESPACE:
                    watch.reducing.update(watch._stack)
                return func(*args, **(kwargs or {}))

        for name, m in self.modules.items():
            self._handles.append(m.register_forward_pre_hook(lambda m, args, name=name: self._enter(name, m, args)))
            self._handles.append(m.register_forward_hook(lambda *_, name=name: self._leave(name), always_call=True))
        self._mode = _Collectives()
        self._mode.__enter__()
        return self

    def _enter(self, name: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        from normreg.auditing.record import first_tensor

        x = first_tensor(args)
        if x is not None and (self.when is None or self.when(module)):
            self.inputs[name].append(x.detach().clone())
        self._stack.append(name)

    def _leave(self, name: str) -> None:
        if name in self._stack:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(name)]

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles = []
