"""A user's own project, written the way Lightning's documentation writes it today (`import lightning.pytorch`).

Nothing here knows about normreg. The tests also run a copy whose import line says `import pytorch_lightning as pl`.
"""

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def wine_tensors(n=96):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] - x[:, 2] > 0).long()
    return TensorDataset(x[: n // 2], y[: n // 2]), TensorDataset(x[n // 2 :], y[n // 2 :])


class WineData(pl.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        self.train_set, self.test_set = wine_tensors()

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.test_set, batch_size=48)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=48)


class WineNet(pl.LightningModule):
    def __init__(self, hidden=8, lr=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ValidatedNet(pl.LightningModule):
    """No test_step: its numbers come from validation_step."""

    def __init__(self, hidden=8, lr=0.5):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class SelfContainedNet(WineNet):
    """Brings its own dataloaders: no datamodule."""

    def setup(self, stage=None):
        self.train_set, self.test_set = wine_tensors()

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=16, shuffle=True)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=48)
