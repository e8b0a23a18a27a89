"""A user's own module for runs on two processes: BatchNorm, metrics logged with sync_dist, and a rank that can
be told to die (SIGKILL) in the middle of training."""

import os
import signal

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Blobs(pl.LightningDataModule):
    def __init__(self, n: int = 256, batch_size: int = 16) -> None:
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(self.n, 4, generator=g)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
        self.train_set = TensorDataset(x[: self.n // 2], y[: self.n // 2])
        self.val_set = TensorDataset(x[self.n // 2 :], y[self.n // 2 :])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=32)


class Net(pl.LightningModule):
    def __init__(self, die_rank: int = -1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
        self.die_rank = die_rank

    def training_step(self, batch, batch_idx):
        if self.global_rank == self.die_rank and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y), sync_dist=True)
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
