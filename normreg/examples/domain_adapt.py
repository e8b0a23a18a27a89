"""Two ways to train one classifier on two domains, which look equivalent and are not with batch norm.

``MergedBatch`` concatenates the source and target batches and takes one loss. ``TwinTower`` runs the
same network once per domain and averages the two losses. Same weights, same data, same loss: with
LayerNorm (or no normalisation) the two compute the same thing. With BatchNorm they do not: each tower
normalises with its own domain's batch statistics during training, which quietly hides the contrast shift
between domains, while at test time BatchNorm normalises with running statistics averaged over both
domains, and the low-contrast domain is mis-normalised. The merged batch normalises with mixture
statistics at training and test time alike.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "layer", "none")

Batch = dict[str, tuple[Tensor, Tensor]]


def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class MLP(nn.Module):
    """A small multilayer perceptron: (linear, norm, ReLU) blocks, then a linear read-out."""

    def __init__(self, n_in: int = 64, hidden: int = 256, depth: int = 1, n_out: int = 10, norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"Expected argument `norm` to be one of {NORMS} but got {norm!r}")
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), _norm_layer(norm, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _TwoDomainClassifier(pl.LightningModule):
    """What both strategies share: the network, the optimiser and the evaluation.

    Subclasses differ only in ``training_step``. Building the network in one place keeps the parameter
    creation order identical, so the same seed gives both strategies the same initial weights.
    """

    def __init__(self, norm: str = "batch", hidden: int = 256, depth: int = 1, lr: float = 1e-3) -> None:
        """Build the network.

        Args:
            norm: "batch" (BatchNorm1d), "layer" (LayerNorm) or "none", after each hidden linear layer.
            hidden: width of each hidden layer.
            depth: number of hidden layers.
            lr: Adam learning rate.
        """
        super().__init__()
        self.save_hyperparameters()
        self.model = MLP(hidden=hidden, depth=depth, norm=norm)
        self.lr = lr

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        x, y, _ = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean(), on_epoch=True, batch_size=len(y))

    def test_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        x, y, domain = batch
        correct = (self(x).argmax(dim=1) == y).float()
        self.log("test_acc", correct.mean(), on_epoch=True, batch_size=len(y))
        # Per-domain accuracy: weight each batch by how many of that domain's images it holds.
        for code, name in enumerate(("source", "target")):
            mask = domain == code
            if mask.any():
                self.log(f"test_acc_{name}", correct[mask].mean(), on_epoch=True, batch_size=int(mask.sum()))


class MergedBatch(_TwoDomainClassifier):
    """One forward pass over both domains' batches concatenated: one loss, mixture statistics."""

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x = torch.cat([batch["source"][0], batch["target"][0]])
        y = torch.cat([batch["source"][1], batch["target"][1]])
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, batch_size=len(y))
        return loss


class TwinTower(_TwoDomainClassifier):
    """The same network called once per domain (shared weights and running statistics), losses averaged."""

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        losses = [F.cross_entropy(self(x), y) for x, y in (batch["source"], batch["target"])]
        loss = (losses[0] + losses[1]) / 2
        self.log("train_loss", loss, batch_size=sum(len(batch[d][1]) for d in ("source", "target")))
        return loss
