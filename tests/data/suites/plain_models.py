"""Models without BatchNorm, written in another style than normreg's examples: `lightning.pytorch`, a separate
DataModule with its own arguments, named submodules, an actor that collects its own data. For the audit's tests."""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Points(L.LightningDataModule):
    """Noisy points on a line; `shift` moves every input (a data change the models cannot see)."""

    def __init__(self, shift: float = 0.0, batch_size: int = 16) -> None:
        super().__init__()
        self.shift, self.batch_size = shift, batch_size

    def _set(self, seed: int) -> TensorDataset:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(64, 4, generator=g) + self.shift
        return TensorDataset(x, x.sum(1, keepdim=True) + 0.1 * torch.randn(64, 1, generator=g))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._set(0), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._set(1), batch_size=self.batch_size)


class Regressor(L.LightningModule):
    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class PosNorm(Regressor):
    """Normalises its inputs with a LayerNorm called `pos_norm`."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_norm = nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.pos_norm(x))


class StateNorm(Regressor):
    """The same network with another normalisation, under another name: an RMSNorm called `state_norm`."""

    def __init__(self) -> None:
        super().__init__()
        self.state_norm = nn.RMSNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.state_norm(x))


class Actor(L.LightningModule):
    """Collects its own data by acting with its policy, which holds dropout and is left in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(3)
        obs = torch.randn(64, 4, generator=g)
        with torch.no_grad():  # acting: nothing trains here, yet the policy is in train mode
            actions = self.policy(obs).argmax(1)
        return DataLoader(TensorDataset(obs, actions), batch_size=32)

    def training_step(self, batch, batch_idx):
        obs, actions = batch
        return F.cross_entropy(self.policy(obs), actions)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
