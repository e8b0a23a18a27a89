"""A user's own module sitting next to its suite: a tiny regression problem in plain Lightning."""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Blobs(pl.LightningDataModule):
    def __init__(self, n: int = 256, batch_size: int = 32) -> None:
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(1234)  # the data are fixed; the seed only changes the order
        x = torch.randn(self.n, 4, generator=g)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
        self.train_set = TensorDataset(x[: self.n // 2], y[: self.n // 2])
        self.test_set = TensorDataset(x[self.n // 2 :], y[self.n // 2 :])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=64)


class Classifier(pl.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.05, broken: bool = False, hog_gib: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.lr, self.broken, self.hog_gib = lr, broken, hog_gib

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.broken:
            raise RuntimeError("this variant is broken on purpose")
        if self.hog_gib:  # more memory than the device has: a CUDA out-of-memory inside the run
            torch.empty(int(self.hog_gib * 2**30), dtype=torch.uint8, device=self.device)
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=len(x))
        return loss

    def test_step(self, batch, batch_idx):
        x, y = batch
        acc = (self.net(x).argmax(1) == y).float().mean()
        self.log("acc", acc, batch_size=len(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def not_a_model(**kwargs):
    return object()
