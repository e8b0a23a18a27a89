"""Small hand-built LightningModules for the audit's tests: each check gets one model with the trap, one without.

Written as a user would write them (plain Lightning, own dataloaders), so the audit sees them as unknown code.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset


def _norm(kind: str, width: int) -> nn.Module:
    return {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[kind](width)


def two_sources(n: int = 64, d: int = 6) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(7)
    xa, xb = torch.randn(n, d, generator=g), 0.2 * torch.randn(n, d, generator=g) + 0.5
    ya, yb = torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)
    return TensorDataset(xa, ya), TensorDataset(xb, yb)


class TwoSource(pl.LightningModule):
    """Shared net and data; subclasses differ in how a training step feeds the two sources."""

    def __init__(self, norm: str = "batch", weight: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), _norm(norm, 16), nn.ReLU(), nn.Linear(16, 3))
        self.weight = weight

    def train_dataloader(self):
        a, b = two_sources()
        return {"a": DataLoader(a, batch_size=16), "b": DataLoader(b, batch_size=16)}

    def forward(self, x):
        return self.net(x)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Merged(TwoSource):
    def training_step(self, batch, batch_idx):
        x = torch.cat([batch["a"][0], batch["b"][0]])
        y = torch.cat([batch["a"][1], batch["b"][1]])
        return F.cross_entropy(self(x), y)


class MergedReversed(TwoSource):
    """The same as Merged with the sources in the other order: the rows reach each layer in another position."""

    def training_step(self, batch, batch_idx):
        x = torch.cat([batch["b"][0], batch["a"][0]])
        y = torch.cat([batch["b"][1], batch["a"][1]])
        return F.cross_entropy(self(x), y)


class Twin(TwoSource):
    """One call per source; losses weighted `weight` and 1 - `weight` (0.5: the same loss as Merged)."""

    def training_step(self, batch, batch_idx):
        la = F.cross_entropy(self(batch["a"][0]), batch["a"][1])
        lb = F.cross_entropy(self(batch["b"][0]), batch["b"][1])
        return self.weight * la + (1 - self.weight) * lb


class States(IterableDataset):
    """Rollouts collected by the agent itself while the loader is iterated, as an RL agent does."""

    def __init__(self, agent: Actor) -> None:
        self.agent = agent

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(2):
            obs = torch.randn(4, 3, generator=g)  # four parallel environments
            yield {"obs": obs, "action": self.agent.act(obs)}


class Actor(pl.LightningModule):
    """Picks actions for 4 parallel environments; `act_mode="train"` is the essay's bug."""

    def __init__(self, act_mode: str = "eval", norm: str = "batch") -> None:
        super().__init__()
        self.act_mode = act_mode
        self.policy = nn.Sequential(nn.Linear(3, 8), _norm(norm, 8), nn.Tanh(), nn.Linear(8, 2))

    @torch.no_grad()
    def act(self, obs):
        was = self.policy.training
        self.policy.train(self.act_mode == "train")
        actions = self.policy(obs).argmax(-1)
        self.policy.train(was)
        return actions

    def train_dataloader(self):
        return DataLoader(States(self), batch_size=None)

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self.policy(batch["obs"]), batch["action"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _images(n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(3)
    return TensorDataset(torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 2, (n,), generator=g))


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())


class FrozenBackbone(pl.LightningModule):
    """A frozen conv backbone with BatchNorm2d and a trainable head.

    `keep_eval=True` keeps the backbone in eval mode for good (the fix). `serve_single=True` makes test_step also
    classify each image alone through the network in train mode, as a careless serving helper does.
    """

    def __init__(self, keep_eval: bool = True, serve_single: bool = False) -> None:
        super().__init__()
        self.keep_eval, self.serve_single = keep_eval, serve_single
        self.backbone = Backbone()
        self.backbone.requires_grad_(False)
        self.head = nn.Linear(4, 2)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.keep_eval:
            self.backbone.eval()
        return self

    def forward(self, x):
        return self.head(self.backbone.body(x))

    def train_dataloader(self):
        return DataLoader(_images(), batch_size=16)

    def test_dataloader(self):
        return DataLoader(_images(), batch_size=8)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("acc", (self(x).argmax(1) == y).float().mean())
        if self.serve_single:
            self.train()
            with torch.no_grad():
                for image in x:
                    self(image[None])
            self.eval()

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=1e-2)


class RobotState(pl.LightningModule):
    """Joint positions (~0.1) and velocities (~10) concatenated and normalised together by a LayerNorm at the
    input; `split=True` scales the velocities down first (the features then share one scale)."""

    def __init__(self, split: bool = False) -> None:
        super().__init__()
        self.split = split
        self.net = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2))

    def train_dataloader(self):
        g = torch.Generator().manual_seed(5)
        pos, vel = 0.1 * torch.randn(32, 2, generator=g), 10 * torch.randn(32, 2, generator=g)
        return DataLoader(TensorDataset(pos, vel, torch.randint(0, 2, (32,), generator=g)), batch_size=32)

    def training_step(self, batch, batch_idx):
        pos, vel, y = batch
        if self.split:
            vel = vel / 100
        return F.cross_entropy(self.net(torch.cat([pos, vel], dim=1)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class NeedsTrainer(pl.LightningModule):
    """A training step that reads the Trainer: the audit cannot run it and must say so, not crash."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2, 2)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2), torch.randint(0, 2, (8,))), batch_size=8)

    def training_step(self, batch, batch_idx):
        return self.trainer.global_step + F.cross_entropy(self.net(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
