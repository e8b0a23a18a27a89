"""A user's model for the checkpoint tests, written apart from normreg's examples: `lightning.pytorch`, its own
dataloaders (shuffled by the global generator), dropout, a learning-rate schedule stepped every epoch, and a
validation loop. It appends each epoch it trains to a file, so a test counts the epochs a process trained."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning.pytorch as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _points(seed: int, n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, 0] - x[:, 2] > 0).long())


class Drifting(L.LightningModule):
    def __init__(self, epochs_log: str = "", stop_at_epoch: int = -1, epoch_seconds: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
        self.epochs_log, self.stop_at_epoch, self.epoch_seconds = epochs_log, stop_at_epoch, epoch_seconds

    def on_train_epoch_start(self) -> None:
        time.sleep(self.epoch_seconds)  # a longer epoch, so that a test can kill the run in the middle
        if self.current_epoch == self.stop_at_epoch:  # Ctrl-C arrives here (the tests' in-process stop)
            os.kill(os.getpid(), signal.SIGINT)
        if self.epochs_log:
            with Path(self.epochs_log).open("a") as f:
                f.write(f"{os.getpid()} {self.current_epoch}\n")

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.body(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.body(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.cross_entropy(self.body(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_points(0, 96), batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_points(1, 32), batch_size=16)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_points(2, 64), batch_size=32)
