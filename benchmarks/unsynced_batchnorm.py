"""The audit's unsynced_batchnorm check end to end, over many seeds: how often it flags a DDP run whose processes
read shards of one mixture (false alarms; the rule allows 1%), how often it flags one whose processes each read
one source (detection), and what the check costs per variant.

    python benchmarks/unsynced_batchnorm.py [--seeds 100] [--processes 2] [--shift 1.0]

A two-source dataset (source 1 shifted by `--shift` SDs and squashed to 0.5 SD), an MLP with two BatchNorm
layers, 16 rows per process. Measured here, not asserted in tests, because it takes a minute.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _classes(shift: float) -> tuple[Any, Any]:
    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class Sources(pl.LightningDataModule):
        def __init__(self, seed: int, per_source: bool) -> None:
            super().__init__()
            self.seed, self.per_source = seed, per_source

        def setup(self, stage: str) -> None:
            g = torch.Generator().manual_seed(self.seed)
            self.source = torch.arange(512) % 2
            self.x = torch.randn(512, 12, generator=g)
            self.x[self.source == 1] = shift + 0.5 * self.x[self.source == 1]
            self.y = (self.x[:, 0] > 0).long()

        def train_dataloader(self) -> DataLoader:
            keep = torch.ones_like(self.y).bool()
            if self.per_source and self.trainer.world_size > 1:
                keep = self.source == self.trainer.global_rank % 2
            return DataLoader(TensorDataset(self.x[keep], self.y[keep]), batch_size=16, shuffle=True)

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32),
                                     nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Sources, Net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--shift", type=float, default=1.0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from normreg.auditing.checks import all_checks
    from normreg.auditing.checks.unsynced_batchnorm import unsynced_batchnorm
    from normreg.auditing.run import Subject, record
    from normreg.auditing.steps import quiet

    torch.set_num_threads(1)
    all_checks()
    sources, net = _classes(args.shift)
    trainer = {"devices": args.processes, "strategy": "ddp"}
    for per_source, label in ((False, "one mixture, DistributedSampler"), (True, "one source per process")):
        flagged, times, notes = 0, [], []
        for seed in range(args.seeds):
            with quiet():
                subject = Subject("v", net(), sources(seed, per_source), trainer=trainer,
                                  make_data=lambda s=seed, p=per_source: sources(s, p))
                (rec,) = record([subject], seed=seed, drift_steps=0, notes=notes)
                start = time.perf_counter()
                found = unsynced_batchnorm(rec)
                times.append(time.perf_counter() - start)
            flagged += bool(found)
        print(f"{label:32s} {args.processes} processes: flagged {flagged}/{args.seeds} seeds "
              f"({flagged / args.seeds:.1%}); check {statistics.median(times) * 1000:.0f} ms median"
              + (f"; notes: {notes[:2]}" if notes else ""))


if __name__ == "__main__":
    main()
