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
  rows, p <= `ALPHA`, on at most `CHANNELS` channels drawn at random), and by enough to matter (`SHIFT_FLOOR`
  pooled SDs in mean or `RATIO_FLOOR` in variance); an error from `SHIFT_LIMIT` SDs or `RATIO_LIMIT` times, as the
  per-source check rates sub-batches.

Each process's first batch is fetched as that process would (normreg.auditing.shards); the statistics are those
of one training step on all the processes' rows together, split back by process at each layer, so every layer is
compared on the inputs a synchronised run would give it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
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
    p: float  # share of random re-splits (and the observed one) that differ at least as much
    random_shift_sd: float  # 99th percentile over the random re-splits
    random_variance_ratio: float
    permutations: int

    @property
    def flagged(self) -> bool:
        return self.p <= ALPHA and (self.mean_shift_sd >= SHIFT_FLOOR or self.variance_ratio >= RATIO_FLOOR)

    @property
    def severe(self) -> bool:
        return self.mean_shift_sd >= SHIFT_LIMIT or self.variance_ratio >= RATIO_LIMIT


def _sample_sums(x: Tensor) -> tuple[Tensor, Tensor, int]:
    """Per sample (row) and channel: the sum and the sum of squares of the values BatchNorm pools (the row's
    positions), and how many values each row gives a channel."""
    flat = x.double().reshape(x.shape[0], x.shape[1], -1)
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


def compare_shards(x: Tensor, sizes: Sequence[int], *, permutations: int = PERMUTATIONS, channels: int = CHANNELS,
                   seed: int = 0) -> ShardComparison:
    """Compare the processes' shards of one BatchNorm input `x` (their rows in rank order; `sizes` samples each)
    with `permutations` random re-splits of the same samples into shards of the same sizes. The measures average
    over channels, so a wide layer is compared on `channels` of them drawn at random (a valid test all the same,
    and the cost of a layer stays small)."""
    samples = sum(sizes)
    if x.dim() < 2 or x.shape[0] != samples:
        raise ValueError(f"Expected `x` to have one row per sample ({samples}) and channels, but got {tuple(x.shape)}")
    s1, s2, per = _sample_sums(x)
    total = samples * per
    pooled_mean = s1.sum(0) / total
    pooled_var = (s2.sum(0) / total - pooled_mean**2).clamp_min(0)
    live = pooled_var > 1e-10 * float(pooled_var.max())
    if not bool(live.any()):  # every channel constant: nothing differs
        return ShardComparison((0, 1), 0.0, 1.0, 1.0, 0.0, 1.0, permutations)
    gen = torch.Generator().manual_seed(seed)
    keep = live.nonzero().flatten()
    if len(keep) > channels:
        keep = keep[torch.randperm(len(keep), generator=gen)[:channels]]
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
                           permutations)


def _batch_statistics(m: nn.Module) -> bool:
    """Whether a BatchNorm normalises with the statistics of its batch (rather than its running statistics)."""
    return m.training or getattr(m, "running_mean", None) is None


def _examined(rec: Recordings) -> dict[str, nn.Module]:
    return {rec.names[id(m)]: m for m in rec.model.modules()
            if isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm) and id(m) in rec.names}


def _pooled_step(rec: Recordings, procs: Processes, layers: dict[str, nn.Module]) -> tuple[Watch, list[int]]:
    """One training step on every process's first batch together, watching the layers' inputs and collectives."""
    from normreg.auditing.steps import seed_all, training_step

    assert rec.rank_batches is not None
    try:
        batches = rec.rank_batches(procs)
        pooled = concatenate(batches)
    except Unshardable as e:
        raise Skipped(f"each process's shard cannot be seen: {e}") from e
    except Exception as e:  # noqa: BLE001 - the user's data code, run as one rank of several
        raise Skipped(f"fetching each process's first training batch (as rank r of {procs.world_size}, see "
                      f"docs/audit.md) raised {describe_error(e)}") from e
    counted = [rows(b) for b in batches]
    sizes = [n for n in counted if n]
    if len(sizes) < len(counted):
        raise Skipped(f"a process's batch holds no rows ({counted})")
    rec.restore()
    seed_all(rec.seed)
    rec.model.train()
    watch = Watch(layers, when=_batch_statistics)
    try:
        with process_group(0, procs.world_size), watch:
            training_step(rec.model, pooled, 0)
    except Exception as e:  # noqa: BLE001
        raise Skipped(f"training_step on the processes' batches together raised {describe_error(e)}") from e
    return watch, sizes


def unsynced_batchnorm(rec: Recordings) -> list[Finding]:
    """BatchNorm layers that normalise each process's shard apart while the shards differ (see the module)."""
    procs = Processes.of(rec.trainer)
    if procs is None or procs.sync_batchnorm or rec.rank_batches is None:
        return []
    layers = _examined(rec)
    if not layers:
        return []
    watch, sizes = _pooled_step(rec, procs, layers)
    total = sum(sizes)
    findings = []
    # Only calls with one row per example of the joined batch can be split back by process (rows in rank order);
    # a layer fed reshaped or re-ordered rows is not examined rather than guessed at.
    fitting = {n: [x for x in watch.inputs[n] if x.dim() >= 2 and x.shape[0] == total] for n in layers}
    if not any(fitting.values()) and any(watch.inputs.values()):
        raise Skipped(f"no BatchNorm input has one row per example of the processes' {total} rows together, so "
                      "the rows cannot be split back by process")
    for name, module in layers.items():
        fits = fitting[name]
        if name in watch.reducing or not fits:
            continue
        cmp = compare_shards(fits[0], sizes, seed=rec.seed)
        if not cmp.flagged:
            continue
        a, b = cmp.ranks
        findings.append(Finding(
            "unsynced_batchnorm", "error" if cmp.severe else "warning", rec.variant, name, type(module).__name__,
            f"{name} normalises each process's shard with that shard's own statistics ({procs.world_size} "
            f"processes, strategy {procs.strategy}, no SyncBatchNorm), and the shards differ: at this layer ranks "
            f"{a} and {b} are {cmp.mean_shift_sd:.2g} SD apart in mean and {cmp.variance_ratio:.3g}x in variance, "
            f"where random shards of the same {total} rows differ by up to {cmp.random_shift_sd:.2g} SD and "
            f"{cmp.random_variance_ratio:.3g}x (99th percentile of {cmp.permutations} re-splits; p = {cmp.p:.2g}). "
            "Each process trains with its own shard's statistics, while the running statistics that serve every "
            "input at test time are rank 0's",
            {"world_size": procs.world_size, "strategy": procs.strategy, "ranks": [a, b], "rows": list(sizes),
             "mean_shift_sd": cmp.mean_shift_sd, "variance_ratio": cmp.variance_ratio, "p": cmp.p,
             "random_shift_sd_99": cmp.random_shift_sd, "random_variance_ratio_99": cmp.random_variance_ratio,
             "permutations": cmp.permutations},
            FIX))
    return findings


@register("unsynced_batchnorm")
def check(rec: Recordings) -> list[Finding]:
    """Unsynchronised BatchNorm across processes whose shards differ in composition."""
    return unsynced_batchnorm(rec)


__all__ = ["ShardComparison", "compare_shards", "unsynced_batchnorm"]
