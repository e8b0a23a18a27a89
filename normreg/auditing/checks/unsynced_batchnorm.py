"""Unsynchronised BatchNorm across processes: each process normalises its own shard, and the shards differ.

Under DDP (any run of several processes) a BatchNorm layer in train mode takes its statistics over its own
process's rows only. When every process reads a shard of the same mixture that is harmless noise; when the shards
differ in composition (one domain per process, say), each process trains with its own shard's statistics, and the
running statistics that serve every input at test time are rank 0's (DDP broadcasts rank 0's buffers): the
twin-tower bug on a cluster. The rule, per layer:

* examined: a torch BatchNorm (`_BatchNorm`, subclasses included) that normalises with batch statistics in the
  training step (train mode, or no running statistics), in a variant whose Trainer asks for several processes;
* not examined: every such layer when the Trainer sets `sync_batchnorm: true` (Lightning makes each a
  SyncBatchNorm), a `SyncBatchNorm`, and any layer whose own forward runs a collective operation (an all-reduce of
  its statistics: run here in a process group of the run's size, torch's `fake` backend); normalisations that are
  not BatchNorm (LayerNorm, GroupNorm, a user's own batch-statistics module) are the batch-independence check's;
* flagged: when the statistics the layer sees on each process's shard differ, between some pair of processes,
  more than random shards of the same rows would (a permutation test over `PERMUTATIONS` random re-splits of the
  rows, on at most `CHANNELS` channels drawn at random, p <= `ALPHA` family-wise over the model's examined layers:
  Westfall and Young's max-T on the same re-splits), and by enough to matter (`SHIFT_FLOOR` pooled SDs in mean or
  `RATIO_FLOOR` in variance); an error from `SHIFT_LIMIT` SDs or `RATIO_LIMIT` times, as the per-source check
  rates sub-batches.

Each process's first batch is fetched as that process would (normreg.auditing.shards). One training step on all
the processes' rows together gives each layer the statistics a synchronised run would use; then one step per
process's batch, each layer normalising with those statistics, gives the rows each process feeds each layer,
whatever the model does with its batch. So every layer is compared on the inputs a synchronised run would give
it, and a layer downstream of a flagged one is judged on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from normreg.auditing.checks import Recordings, Skipped, register
from normreg.auditing.findings import Finding
from normreg.auditing.shards import Processes, Unshardable, Watch, concatenate, process_group, rows
from normreg.execution.failure import describe_error

PERMUTATIONS = 199
CHANNELS = 256  # a layer with more is compared on this many of its channels, drawn at random
ALPHA = 0.01
SHIFT_FLOOR, RATIO_FLOOR = 0.2, 1.25
SHIFT_LIMIT, RATIO_LIMIT = 0.5, 2.0

FIX = ("Set `trainer: {sync_batchnorm: true}` (SyncBatchNorm takes the statistics over every process's rows; on "
       "the CPU, where torch's SyncBatchNorm refuses to run, use a BatchNorm that all-reduces its statistics, as "
       "normreg.examples.ddp_domains.AllProcessBatchNorm1d does), or give every process a shard of the same "
       "mixture (a DistributedSampler over the shuffled rows of every domain), or use LayerNorm/GroupNorm.")


@dataclass(frozen=True)
class ShardComparison:
    """How the statistics of one layer's input differ between the processes' shards, against random shards."""

    ranks: tuple[int, int]  # the pair of processes whose shards differ most
    mean_shift_sd: float  # RMS over channels of their means' difference, in pooled SDs
    variance_ratio: float  # geometric mean over channels of their variances' ratio (>= 1)
    p: float  # share of random re-splits (and the observed one) that differ at least as much (family-wise, below)
    random_shift_sd: float  # 99th percentile over the random re-splits
    random_variance_ratio: float
    permutations: int
    p_layer: float = 1.0  # `p` for this layer alone (equal to `p` until `family_wise` adjusts it)
    score: float = 0.0  # shift² + log(ratio)² of the observed split, and of each random re-split:
    null: Tensor = field(default_factory=lambda: torch.zeros(0), repr=False, compare=False)

    @property
    def flagged(self) -> bool:
        return self.p <= ALPHA and (self.mean_shift_sd >= SHIFT_FLOOR or self.variance_ratio >= RATIO_FLOOR)

    @property
    def severe(self) -> bool:
        return self.mean_shift_sd >= SHIFT_LIMIT or self.variance_ratio >= RATIO_LIMIT


def _sample_sums(x: Tensor, group: int) -> tuple[Tensor, Tensor, int]:
    """Per sample (`group` consecutive rows) and channel: the sum and the sum of squares of the values BatchNorm
    pools (its rows' positions), and how many values each sample gives a channel."""
    flat = x.double().reshape(x.shape[0] // group, group, x.shape[1], -1).transpose(1, 2)
    flat = flat.reshape(flat.shape[0], flat.shape[1], -1)
    return flat.sum(2), (flat * flat).sum(2), flat.shape[2]


def _worst_pair(labels: Tensor, ranks: int, s1: Tensor, s2: Tensor, per: int,
                pooled_var: Tensor) -> tuple[Tensor, ...]:
    """For each assignment of samples to processes ((P, S) process labels): the pair of processes whose statistics
    differ most, its mean shift (pooled SDs), its variance ratio, and the score they are ranked by."""
    assign = nn.functional.one_hot(labels, ranks).transpose(1, 2).double()
    n = assign.sum(-1, keepdim=True) * per
    mean = assign @ s1 / n
    var = (assign @ s2 / n - mean * mean).clamp_min(0)
    lv = (var + 1e-6 * pooled_var).log()
    i, j = torch.triu_indices(assign.shape[1], assign.shape[1], 1)
    shift = ((mean[:, i] - mean[:, j]) ** 2 / pooled_var).mean(-1).sqrt()
    log_ratio = (lv[:, i] - lv[:, j]).abs().mean(-1)
    score = shift**2 + log_ratio**2
    worst = score.argmax(-1)
    at = torch.arange(len(worst))
    return worst, shift[at, worst], log_ratio[at, worst].exp(), score[at, worst], i, j


def compare_shards(x: Tensor, sizes: Sequence[int], *, group: int = 1, permutations: int = PERMUTATIONS,
                   channels: int = CHANNELS, seed: int = 0) -> ShardComparison:
    """Compare the processes' shards of one BatchNorm input `x` (their rows in rank order, `sizes` rows each) with
    `permutations` random re-splits of the same samples (`group` consecutive rows each) into shards of the same
    sizes. The measures average over channels, so a wide layer is compared on `channels` of them drawn at random
    (a valid test all the same, and the cost of a layer stays small)."""
    if x.dim() < 2 or x.shape[0] != sum(sizes) or any(n % group for n in sizes):
        raise ValueError(f"Expected `x` to have {sum(sizes)} rows (the sizes {list(sizes)}, each a multiple of "
                         f"group={group}) and channels, but got {tuple(x.shape)}")
    sizes = [n // group for n in sizes]
    samples = sum(sizes)
    s1, s2, per = _sample_sums(x, group)
    total = samples * per
    pooled_mean = s1.sum(0) / total
    pooled_var = (s2.sum(0) / total - pooled_mean**2).clamp_min(0)
    live = pooled_var > 1e-10 * float(pooled_var.max())
    if not bool(live.any()):  # every channel constant: nothing differs
        return ShardComparison((0, 1), 0.0, 1.0, 1.0, 0.0, 1.0, permutations)
    keep = live.nonzero().flatten()
    if len(keep) > channels:
        keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed + 1))[:channels]]
    # The re-splits depend only on the sizes and the seed, so layers compared with one seed share them
    # (`family_wise` needs that).
    gen = torch.Generator().manual_seed(seed)
    s1, s2, pooled_var = s1[:, keep], s2[:, keep], pooled_var[keep]
    labels = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(list(sizes)))
    shuffled = labels[torch.argsort(torch.rand(permutations, samples, generator=gen), dim=1)]
    assign = torch.cat([labels[None], shuffled])  # the observed split first
    pairs = len(sizes) * (len(sizes) - 1) // 2
    chunk = max(1, 4_000_000 // (pairs * s1.shape[1] + len(sizes) * (samples + s1.shape[1])))  # bounded memory
    parts = [_worst_pair(assign[k : k + chunk], len(sizes), s1, s2, per, pooled_var)
             for k in range(0, len(assign), chunk)]
    worst, shift, ratio, score = (torch.cat([part[m] for part in parts]) for m in range(4))
    i, j = parts[0][4], parts[0][5]
    p = float((score[1:] >= score[0]).sum() + 1) / (permutations + 1)
    return ShardComparison((int(i[worst[0]]), int(j[worst[0]])), float(shift[0]), float(ratio[0]), p,
                           float(torch.quantile(shift[1:], 0.99)), float(torch.quantile(ratio[1:], 0.99)),
                           permutations, p, float(score[0]), score[1:])


def family_wise(comparisons: Sequence[ShardComparison]) -> list[ShardComparison]:
    """The comparisons of several layers made on the same re-splits, with `p` adjusted for testing them all
    (Westfall and Young's max-T): each layer's score is standardised by its own re-splits, and a layer's p is the
    share of re-splits whose largest standardised score over every layer reaches the layer's. Under shards of one
    mixture the chance that any layer is flagged is then at most ALPHA, however many layers the model has."""
    live = [c for c in comparisons if len(c.null)]
    if len(live) < 2:
        return list(comparisons)
    null = torch.stack([c.null for c in live])
    mean, sd = null.mean(1, keepdim=True), null.std(1, keepdim=True).clamp_min(1e-12)
    top = ((null - mean) / sd).max(0).values
    adjusted = {id(c): float((top >= (c.score - m) / d).sum() + 1) / (len(top) + 1)
                for c, m, d in zip(live, mean.flatten().tolist(), sd.flatten().tolist())}
    return [replace(c, p=max(c.p_layer, adjusted[id(c)])) if id(c) in adjusted else c for c in comparisons]


def _batch_statistics(m: nn.Module) -> bool:
    """Whether a BatchNorm normalises with the statistics of its batch (rather than its running statistics)."""
    return m.training or getattr(m, "running_mean", None) is None


def _examined(rec: Recordings) -> dict[str, nn.Module]:
    return {rec.names[id(m)]: m for m in rec.model.modules()
            if isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm) and id(m) in rec.names}


def _fetch(rec: Recordings, procs: Processes) -> tuple[list[Any], Any]:
    """Every process's first training batch, and all of them joined."""
    assert rec.rank_batches is not None
    try:
        batches = rec.rank_batches(procs)
        return batches, concatenate(batches)
    except Unshardable as e:
        raise Skipped(f"each process's shard cannot be seen: {e}") from e
    except Exception as e:  # noqa: BLE001 - the user's data code, run as one rank of several
        raise Skipped(f"fetching each process's first training batch (as rank r of {procs.world_size}, see "
                      f"docs/audit.md) raised {describe_error(e)}") from e


def _step(rec: Recordings, batch: Any, rank: int, procs: Processes, watch: Watch, what: str) -> None:
    from normreg.auditing.steps import seed_all, training_step

    rec.restore()
    seed_all(rec.seed)
    rec.model.train()
    try:
        with process_group(rank, procs.world_size), watch:
            training_step(rec.model, batch, 0)
    except Exception as e:  # noqa: BLE001
        raise Skipped(f"training_step on {what} raised {describe_error(e)}") from e
    finally:
        rec.restore()


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """What BatchNorm normalises a batch with: each channel's mean and (biased) variance over rows and positions."""
    v = x.transpose(0, 1).reshape(x.shape[1], -1)
    return v.mean(1), v.var(1, unbiased=False)


@contextlib.contextmanager
def _synchronised(layers: Mapping[str, nn.Module], moments: Mapping[str, list[tuple[Tensor, Tensor]]],
                  ) -> Iterator[None]:
    """While active, the k-th batch-statistics call of each layer normalises with `moments[name][k]` (those of
    every process's rows together) instead of its own batch's: what a synchronised BatchNorm computes."""
    calls = dict.fromkeys(layers, 0)

    def replace(name: str, m: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        if not _batch_statistics(m) or not isinstance(args[0], Tensor) or calls[name] >= len(moments[name]):
            return None
        mean, var = moments[name][calls[name]]
        calls[name] += 1
        return F.batch_norm(args[0], mean.to(args[0].dtype), var.to(args[0].dtype), m.weight, m.bias, False, 0.0,
                            m.eps)  # type: ignore[arg-type]

    handles = [m.register_forward_hook(lambda mod, a, o, n=n: replace(n, mod, a, o)) for n, m in layers.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _shard_inputs(rec: Recordings, procs: Processes,
                  layers: dict[str, nn.Module]) -> tuple[list[dict[str, list[Tensor]]], set[str], list[int | None]]:
    """Each examined layer's inputs on each process, as a run with synchronised statistics would give them: one
    training step on every process's rows together gives each layer's statistics over all of them (and shows which
    layers run a collective), then one step per process's batch, each layer normalising with those statistics,
    gives the rows each process feeds it."""
    batches, joined = _fetch(rec, procs)
    pooled = Watch(layers, when=_batch_statistics)
    _step(rec, joined, 0, procs, pooled, "the processes' batches together")
    moments = {n: [_moments(x) for x in xs] for n, xs in pooled.inputs.items()}
    per_rank = []
    for rank, batch in enumerate(batches):
        watch = Watch(layers, when=_batch_statistics)
        with _synchronised(layers, moments):
            _step(rec, batch, rank, procs, watch, f"process {rank}'s batch")
        per_rank.append(watch.inputs)
    return per_rank, pooled.reducing, [rows(b) for b in batches]


def _unit(inputs: Sequence[Tensor], batch_rows: Sequence[int | None]) -> int:
    """How many consecutive input rows belong to one example (a (B*T, C) reshape gives T), so that examples, not
    rows, are re-split; 1 when the rows are the examples or the counts do not divide."""
    ks = [x.shape[0] // n if n and x.shape[0] % n == 0 else 1 for x, n in zip(inputs, batch_rows)]
    k = min(ks)
    return k if all(x.shape[0] % k == 0 for x in inputs) else 1


def unsynced_batchnorm(rec: Recordings) -> list[Finding]:
    """BatchNorm layers that normalise each process's shard apart while the shards differ (see the module)."""
    procs = Processes.of(rec.trainer)
    if procs is None or procs.sync_batchnorm or rec.rank_batches is None:
        return []
    layers = _examined(rec)
    if not layers:
        return []
    per_rank, reducing, batch_rows = _shard_inputs(rec, procs, layers)
    compared: dict[str, tuple[list[int], int, ShardComparison]] = {}
    for name in layers:
        firsts = [inputs[name][0] for inputs in per_rank if inputs[name]]
        if name in reducing or len(firsts) < len(per_rank) or any(x.dim() < 2 for x in firsts) or \
                len({x.shape[1:] for x in firsts}) > 1:
            continue  # reduced across processes, not called with batch statistics, or called differently per rank
        sizes = [x.shape[0] for x in firsts]
        group = _unit(firsts, batch_rows)
        compared[name] = sizes, group, compare_shards(torch.cat(firsts), sizes, group=group, seed=rec.seed)
    # Layers whose examples split alike were compared on the same re-splits: their p values are family-wise.
    families: dict[tuple[int, ...], list[str]] = {}
    for name, (sizes, group, _) in compared.items():
        families.setdefault(tuple(n // group for n in sizes), []).append(name)
    findings = []
    for names in families.values():
        adjusted = family_wise([compared[n][2] for n in names])
        for name, cmp in zip(names, adjusted):
            if cmp.flagged:
                findings.append(_finding(rec.variant, procs, name, layers[name], compared[name][0], cmp, len(names)))
    return findings


def _finding(variant: str, procs: Processes, name: str, module: nn.Module, sizes: list[int],
             cmp: ShardComparison, family: int) -> Finding:
    a, b = cmp.ranks
    tested = f", family-wise over {family} BatchNorm layers" if family > 1 else ""
    return Finding(
        "unsynced_batchnorm", "error" if cmp.severe else "warning", variant, name, type(module).__name__,
        f"{name} normalises each process's shard with that shard's own statistics ({procs.world_size} "
        f"processes, strategy {procs.strategy}, no SyncBatchNorm), and the shards differ: at this layer ranks "
        f"{a} and {b} are {cmp.mean_shift_sd:.2g} SD apart in mean and {cmp.variance_ratio:.3g}x in variance, "
        f"where random shards of the same {sum(sizes)} rows differ by up to {cmp.random_shift_sd:.2g} SD and "
        f"{cmp.random_variance_ratio:.3g}x (99th percentile of {cmp.permutations} re-splits; p = {cmp.p:.2g}"
        f"{tested}). Each process trains with its own shard's statistics, while the running statistics that serve "
        "every input at test time are rank 0's",
        {"world_size": procs.world_size, "strategy": procs.strategy, "ranks": [a, b], "rows": list(sizes),
         "mean_shift_sd": cmp.mean_shift_sd, "variance_ratio": cmp.variance_ratio, "p": cmp.p,
         "p_layer": cmp.p_layer, "layers_tested": family, "random_shift_sd_99": cmp.random_shift_sd,
         "random_variance_ratio_99": cmp.random_variance_ratio, "permutations": cmp.permutations},
        FIX)


@register("unsynced_batchnorm")
def check(rec: Recordings) -> list[Finding]:
    """Unsynchronised BatchNorm across processes whose shards differ in composition."""
    return unsynced_batchnorm(rec)


__all__ = ["ShardComparison", "compare_shards", "family_wise", "unsynced_batchnorm"]
