"""normreg audit's unsynced_batchnorm check: BatchNorm under several processes, each normalising its own shard.

The story suites (suites/ddp_batchnorm*.yaml) and, below, a user's project written differently from the example:
its datamodule learns its process from the Trainer, from torch.distributed or from the environment, and its
model normalises (N, C, L) inputs. Nothing starts a process: the audit sees each rank's shard as that rank would.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from normreg.auditing import AuditReport, audit_suite
from normreg.auditing.checks.unsynced_batchnorm import ALPHA, compare_shards
from normreg.auditing.shards import Processes, RankTrainer

SUITES = Path(__file__).parents[3] / "suites"
CHECK = "unsynced_batchnorm"


def flagged(report: AuditReport, variant: str) -> list:
    return [f for f in report.findings if f.check == CHECK and f.variant == variant]


# ------------------------------------------------------------------------------------------- the story suites


@pytest.fixture(scope="module")
def story() -> AuditReport:
    return audit_suite(SUITES / "ddp_batchnorm.yaml")


def test_one_domain_per_process_with_plain_batchnorm_is_flagged_naming_the_layer(story: AuditReport) -> None:
    (f,) = flagged(story, "per_domain_ddp")
    assert (f.severity, f.module, f.module_type) == ("error", "model.1", "BatchNorm1d")
    assert f.evidence["ranks"] == [0, 1] and f.evidence["rows"] == [32, 32]
    assert f.evidence["variance_ratio"] > 3 and f.evidence["p"] == 1 / 200  # no random re-split of 199 as far
    assert "ranks 0 and 1" in f.message and "sync_batchnorm: true" in f.fix


def test_the_merged_batch_and_the_synchronised_statistics_are_not_flagged(story: AuditReport) -> None:
    assert flagged(story, "merged") == [] and flagged(story, "per_domain_ddp_sync") == []
    assert not [n for n in story.notes if CHECK in n]


def test_the_layernorm_control_is_not_flagged() -> None:
    report = audit_suite(SUITES / "ddp_batchnorm_layernorm.yaml")
    assert [f for f in report.findings if f.check == CHECK] == []


def test_sync_batchnorm_in_the_trainer_is_not_flagged() -> None:
    report = audit_suite(SUITES / "ddp_batchnorm.yaml", variants=["per_domain_ddp"],
                         overrides=["variants.per_domain_ddp.trainer.sync_batchnorm=true"])
    assert flagged(report, "per_domain_ddp") == []


# ------------------------------------------------------------------------- a user's project, written its own way

SOURCES = 2


def _rows(n: int = 256) -> tuple[Tensor, Tensor, Tensor]:
    """Two sources of (4 channels x 6 positions) signals: source 1 is shifted and squashed."""
    g = torch.Generator().manual_seed(7)
    source = torch.arange(n) % SOURCES
    x = torch.randn(n, 4, 6, generator=g)
    x[source == 1] = 2.0 + 0.3 * x[source == 1]
    y = (x.mean(dim=(1, 2)) > x.mean()).long()
    return x, y, source


def _rank(how: str, trainer: object) -> tuple[int, int]:
    """The process this datamodule runs in, learned one of the ways user code learns it."""
    if how == "trainer":
        return trainer.global_rank, trainer.world_size  # type: ignore[attr-defined]
    if how == "torch":
        return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    return int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class SourceShards(pl.LightningDataModule):
    """`by_source`: process r of N reads the rows of source r % 2; otherwise every process gets the whole shuffled
    data and the Trainer's DistributedSampler splits it."""

    def __init__(self, how: str = "trainer", by_source: bool = True, batch_size: int = 16) -> None:
        super().__init__()
        self.how, self.by_source, self.batch_size = how, by_source, batch_size

    def setup(self, stage: str) -> None:
        self.x, self.y, self.source = _rows()

    def train_dataloader(self) -> DataLoader:
        rank, size = _rank(self.how, self.trainer)
        keep = (self.source == rank % SOURCES) if self.by_source and size > 1 else torch.ones_like(self.y).bool()
        return DataLoader(TensorDataset(self.x[keep], self.y[keep]), batch_size=self.batch_size, shuffle=True)


class LoaderPerSource(SourceShards):
    """One loader per source, which Lightning combines into one dict batch a step; the Trainer's DistributedSampler
    splits each source between the processes, so every process reads both."""

    def train_dataloader(self) -> dict[str, DataLoader]:  # type: ignore[override]
        return {str(k): DataLoader(TensorDataset(self.x[self.source == k], self.y[self.source == k]),
                                   batch_size=self.batch_size // 2, shuffle=True) for k in range(SOURCES)}


class AllReduceBatchNorm(nn.BatchNorm1d):
    """A user's synchronised BatchNorm: a BatchNorm1d whose training statistics are summed over the processes."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        count = x.new_tensor([x.numel() / x.shape[1]])
        sums = torch.cat([count, x.sum(dims), (x * x).sum(dims)])
        dist.all_reduce(sums)
        c = x.shape[1]
        mean = sums[1 : 1 + c] / sums[0]
        var = sums[1 + c :] / sums[0] - mean**2
        shape = [1, c] + [1] * (x.dim() - 2)
        return (x - mean.view(shape)) / (var.view(shape) + self.eps).sqrt() * self.weight.view(shape) \
            + self.bias.view(shape)


NORMS = {"batch": lambda c: nn.BatchNorm1d(c), "group": lambda c: nn.GroupNorm(1, c),
         "allreduce": AllReduceBatchNorm, "frozen": lambda c: nn.BatchNorm1d(c)}


class SignalNet(pl.LightningModule):
    def __init__(self, norm: str = "batch") -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(4, 8, 3), NORMS[norm](8), nn.ReLU())
        self.head = nn.Linear(8 * 4, 2)
        if norm == "frozen":  # a pretrained BatchNorm kept in eval mode: its running statistics, not the shard's
            self.features[1].requires_grad_(False)

    def training_step(self, batch: tuple[Tensor, Tensor] | dict[str, list[Tensor]], batch_idx: int) -> Tensor:
        if isinstance(batch, dict):  # one loader per source: their rows in one forward, source by source
            x, y = (torch.cat([part[i] for part in batch.values()]) for i in range(2))
        else:
            x, y = batch
        if isinstance(self.features[1], nn.BatchNorm1d) and not self.features[1].weight.requires_grad:
            self.features[1].eval()
        return F.cross_entropy(self.head(self.features(x).flatten(1)), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _suite(tmp_path: Path, variants: dict[str, str]) -> Path:
    """A suite over this file's model and datamodule; `variants` maps a name to its YAML mapping."""
    lines = [
        "name: user_ddp",
        "seeds: 1",
        "metrics: {acc: {goal: max, min_effect: 0.01}}",
        "trainer: {max_epochs: 1, accelerator: cpu}",
        f"data: {{target: '{__name__}:SourceShards'}}",
        f"reference: {next(iter(variants))}",
        "variants:",
        *(f"  {name}: {spec}" for name, spec in variants.items()),
    ]
    path = tmp_path / "user_ddp.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _model(norm: str = "batch", data: str = "") -> str:
    return f"{{target: '{__name__}:SignalNet', args: {{norm: {norm}}}}}" + data


DDP = "trainer: {devices: 2, strategy: ddp}"


@pytest.mark.parametrize("how", ["trainer", "torch", "env"])
def test_a_users_shards_by_source_are_flagged_however_it_learns_its_rank(tmp_path: Path, how: str) -> None:
    report = audit_suite(_suite(tmp_path, {
        "one": f"{{model: {_model()}}}",
        "per_source": f"{{model: {_model()}, data: {{target: '{__name__}:SourceShards', args: {{how: {how}}}}}, "
                      f"{DDP}}}",
    }))
    (f,) = flagged(report, "per_source")
    assert (f.module, f.module_type, f.severity) == ("features.1", "BatchNorm1d", "error")
    assert f.evidence["rows"] == [16, 16] and f.evidence["mean_shift_sd"] > 1
    assert flagged(report, "one") == []
    # The audit's ordinary batches are fetched as rank 0 of one process, so the other checks see them too.
    assert report.notes == () and next(p for p in report.pairs if p.variant == "per_source").modes[0].error is None


def test_evenly_sharded_ddp_and_per_process_norms_that_reduce_or_do_not_use_batches_are_not_flagged(
        tmp_path: Path) -> None:
    mixed = f"data: {{target: '{__name__}:SourceShards', args: {{by_source: false}}}}"
    report = audit_suite(_suite(tmp_path, {
        "one": f"{{model: {_model()}}}",
        "even": f"{{model: {_model()}, {mixed}, {DDP}}}",
        "per_source_loaders": f"{{model: {_model()}, data: {{target: '{__name__}:LoaderPerSource'}}, {DDP}}}",
        "allreduce": f"{{model: {_model('allreduce')}, {DDP}}}",
        "group": f"{{model: {_model('group')}, {DDP}}}",
        "frozen": f"{{model: {_model('frozen')}, {DDP}}}",
        "plain": f"{{model: {_model()}, {DDP}}}",
    }))
    assert {f.variant for f in report.findings if f.check == CHECK} == {"plain"}  # the same shards, unsynced
    assert not [n for n in report.notes if CHECK in n]


def test_a_datamodule_that_needs_more_of_the_trainer_is_skipped_with_the_reason(tmp_path: Path) -> None:
    report = audit_suite(_suite(tmp_path, {
        "one": f"{{model: {_model()}}}",
        "asks": f"{{model: {_model()}, data: {{target: '{__name__}:AsksTheStrategy'}}, {DDP}}}",
    }))
    assert flagged(report, "asks") == []
    (note,) = [n for n in report.notes if f"the {CHECK} check" in n]
    assert note.startswith("asks: the unsynced_batchnorm check did not run:") and "strategy" in note


class AsksTheStrategy(SourceShards):
    def train_dataloader(self) -> DataLoader:
        assert self.trainer.strategy.root_device is not None  # the audit's stand-in trainer has no strategy
        return super().train_dataloader()


def test_rank_trainer_answers_as_the_trainer_of_that_process() -> None:
    t = RankTrainer(3, 4, num_nodes=2)
    assert (t.num_devices, t.local_rank, t.node_rank, t.is_global_zero) == (2, 1, 1, False)
    assert Processes.of({"devices": 1}) is None and Processes.of({"devices": "auto"}) is None
    p = Processes.of({"devices": [0, 1], "strategy": "ddp_spawn", "use_distributed_sampler": False})
    assert p == Processes(2, "ddp_spawn", False, False)


# --------------------------------------------------------------------------------------- the statistic itself


def test_compare_shards_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (20, 5)), rng.normal(1, 2, (30, 5))
    cmp = compare_shards(torch.from_numpy(np.concatenate([a, b])), [20, 30], permutations=99)
    pooled = np.concatenate([a, b]).var(axis=0)
    shift = np.sqrt((((a.mean(0) - b.mean(0)) ** 2) / pooled).mean())
    ratio = np.exp(np.abs(np.log(a.var(0) + 1e-6 * pooled) - np.log(b.var(0) + 1e-6 * pooled)).mean())
    assert cmp.ranks == (0, 1)
    assert cmp.mean_shift_sd == pytest.approx(shift, rel=1e-9) and cmp.variance_ratio == pytest.approx(ratio)
    assert cmp.p == pytest.approx(0.01) and cmp.flagged and cmp.severe
    with pytest.raises(ValueError, match=r"50 rows \(the sizes \[20, 30\], each a multiple of group=1\) and "
                                         r"channels, but got \(25, 5\)"):
        compare_shards(torch.zeros(25, 5), [20, 30])
    grouped = compare_shards(torch.from_numpy(np.concatenate([a, b])), [20, 30], group=10, permutations=99)
    assert grouped.mean_shift_sd == pytest.approx(shift, rel=1e-9)  # the same shards, re-split 10 rows at a time


def test_random_shards_of_one_mixture_are_flagged_at_most_at_the_test_level() -> None:
    """Calibration: shards drawn at random from one mixture (3 processes, 8 rows each, 2x2 images) are flagged
    at most at ALPHA's rate, and the p values are uniform."""
    gen = torch.Generator().manual_seed(11)
    ps, flags = [], 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is ten times faster than several on a busy machine
    try:
        for i in range(300):
            x = torch.randn(24, 3, 2, 2, generator=gen) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1)
            cmp = compare_shards(x, [8, 8, 8], permutations=99, seed=i)
            ps.append(cmp.p)
            flags += cmp.flagged
    finally:
        torch.set_num_threads(threads)
    assert flags <= 300 * ALPHA + 6  # binomial(300, 0.01): mean 3, P(> 9) < 0.001
    assert 0.02 < np.mean(np.array(ps) <= 0.1) < 0.18


def test_each_rank_gets_its_distributed_sampler_shard_as_the_trainer_gives_it() -> None:
    from normreg.auditing.shards import Unshardable, distributed

    data = TensorDataset(torch.arange(10.0))
    procs = Processes(2, "ddp", False, True)
    loaders = {"a": DataLoader(data, batch_size=10, shuffle=True)}
    shards = [distributed(loaders, r, procs)["a"] for r in range(2)]
    seen = [next(iter(s))[0].tolist() for s in shards]
    assert sorted(seen[0] + seen[1]) == list(range(10)) and len(seen[0]) == len(seen[1]) == 5
    assert seen[0] != sorted(seen[0]) or seen[1] != sorted(seen[1])  # still shuffled
    batches = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(data), 2, False)

    class Buckets(torch.utils.data.BatchSampler):
        pass

    assert next(iter(distributed(DataLoader(data, batch_sampler=batches), 1, procs)))[0].tolist() == [1.0, 3.0]
    with pytest.raises(Unshardable, match="own batch sampler"):
        distributed(DataLoader(data, batch_sampler=Buckets(batches.sampler, 2, False)), 1, procs)


@pytest.mark.parametrize("sampler", [True, False])
def test_rank_batches_are_what_each_process_reads(sampler: bool) -> None:
    """With the Trainer's DistributedSampler the ranks read disjoint rows of the shuffled data; without it (and
    a datamodule that does not shard) each reads the same rows."""
    from normreg.auditing.shards import rank_batches

    procs = Processes(2, "ddp", False, sampler)
    (x0, _), (x1, _) = rank_batches(SignalNet(), lambda: SourceShards(by_source=False), procs, seed=0)
    rows0, rows1 = {tuple(r.flatten().tolist()) for r in x0}, {tuple(r.flatten().tolist()) for r in x1}
    assert len(rows0) == len(rows1) == 16
    assert (rows0.isdisjoint(rows1)) if sampler else (rows0 == rows1)


def test_family_wise_p_values_keep_a_many_layer_model_to_the_test_level_and_a_real_difference_flagged() -> None:
    """Eight layers of shards drawn from one mixture: each layer alone falls under 0.05 about 5% of the time, so
    some layer does in about a third of models; family-wise, about 5% of models. A layer whose shards do differ
    keeps the smallest p among seven that do not."""
    from normreg.auditing.checks.unsynced_batchnorm import family_wise

    gen = torch.Generator().manual_seed(5)
    any_layer = any_family = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(60):
            cmps = [compare_shards(torch.randn(16, 4, generator=gen), [8, 8], permutations=99, seed=i)
                    for _ in range(8)]
            any_layer += min(c.p for c in cmps) <= 0.05
            any_family += min(c.p for c in family_wise(cmps)) <= 0.05
        shifted = torch.randn(16, 4, generator=gen)
        shifted[8:] += 3
        cmps = [compare_shards(shifted, [8, 8], permutations=99, seed=0)] + \
            [compare_shards(torch.randn(16, 4, generator=gen), [8, 8], permutations=99, seed=0) for _ in range(7)]
    finally:
        torch.set_num_threads(threads)
    assert any_layer >= 12 and any_family <= 8, (any_layer, any_family)
    adjusted = family_wise(cmps)
    assert adjusted[0].p == adjusted[0].p_layer == 0.01 and all(a.p >= c.p for a, c in zip(adjusted, cmps))
