"""The twin-tower bug on a cluster: a digits classifier trained with DDP, each process reading one domain.

A common way to feed two-domain data to two processes is to give each process one domain. Under DDP each process
normalises its own shard of the batch, so plain BatchNorm computes per-domain statistics in training, exactly as
the twin towers of ``domain_adapt.py`` do, and its running statistics (broadcast from rank 0, which reads the
clean domain) mis-normalise the low-contrast domain at test time. The fix takes the statistics over both
processes' rows, the mixture a merged batch of 64 sees: on GPUs `sync_batchnorm=True` (torch's SyncBatchNorm);
on the CPU, where torch's SyncBatchNorm refuses to run ("SyncBatchNorm layers only work with GPU modules"),
``norm="sync_batch"``, the same computation written with a differentiable all-reduce that the gloo backend runs.
In one process the same module trains on one merged batch per step: 32 rows of each domain.

Written as a user writes a LightningModule and a LightningDataModule: nothing here knows about normreg.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from normreg.examples.digits import DOMAINS, TwoDomainDigits

NORMS = ("batch", "sync_batch", "layer")


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over every process, differentiable: the gradient of each process's share is the sum of
    the gradients every process sends back (what torch.distributed.nn's deprecated all_reduce computes)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class AllProcessBatchNorm1d(nn.Module):
    """BatchNorm1d whose training statistics are taken over the rows of every process (what SyncBatchNorm does,
    on any backend). The all-reduce is torch.distributed.nn's, so gradients flow through the shared statistics
    to every process's rows. In one process it is BatchNorm1d."""

    def __init__(self, width: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        sums = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0), (x * x).sum(0)])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sums = _SumOverProcesses.apply(sums)
        n, width = sums[0], x.shape[1]
        mean = sums[1 : 1 + width] / n
        var = sums[1 + width :] / n - mean * mean
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"Expected argument `norm` to be one of {NORMS} but got {norm!r}")
    if norm == "batch":
        return nn.BatchNorm1d(width)
    return AllProcessBatchNorm1d(width) if norm == "sync_batch" else nn.LayerNorm(width)


class DomainPerProcess(TwoDomainDigits):
    """In one process, every step sees 32 rows of each domain; under DDP with two processes, process r reads only
    domain r (32 rows a step). Run the DDP trainer with ``use_distributed_sampler=False``, or Lightning splits each
    domain's rows between the processes instead."""

    # The classifier below has no validation_step: offer no validation data, so Lightning has no loop to skip (and
    # says nothing about one); Lightning reads a datamodule hook that is None as one it does not define.
    val_dataloader = None  # type: ignore[assignment]

    def train_dataloader(self) -> dict[str, DataLoader] | DataLoader:
        if self.trainer is None or self.trainer.world_size == 1:
            return super().train_dataloader()
        domain = DOMAINS[self.trainer.global_rank % len(DOMAINS)]
        return DataLoader(self.train_sets[domain], batch_size=self.batch_size, shuffle=True, drop_last=True)


class DomainClassifier(pl.LightningModule):
    """One classifier for both domains: a merged batch in one process, one domain's rows per process under DDP."""

    def __init__(self, norm: str = "batch", hidden: int = 256, depth: int = 1, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        width = 64
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), _norm_layer(norm, hidden), nn.ReLU()]
            width = hidden
        self.model = nn.Sequential(*layers, nn.Linear(width, 10))
        self.lr = lr

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, tuple[Tensor, Tensor]] | tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        if isinstance(batch, dict):  # one process: both domains in one batch
            x = torch.cat([batch[d][0] for d in DOMAINS])
            y = torch.cat([batch[d][1] for d in DOMAINS])
        else:
            x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, batch_size=len(y), sync_dist=True)
        return loss

    def test_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        x, y, domain = batch
        correct = (self(x).argmax(dim=1) == y).float()
        self.log("test_acc", correct.mean(), batch_size=len(y), sync_dist=True)
        for code, name in enumerate(DOMAINS):
            mask = domain == code
            self.log(f"test_acc_{name}", correct[mask].mean(), batch_size=int(mask.sum()), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
