"""A pretrained backbone, frozen, with a new head trained on a new task.

The second story of "On the perils of batch norm": training accuracy was fine, accuracy evaluated on a batch of
data was still good, but a single example at inference time failed completely. The pretrained network had been
loaded in train mode; its weights were frozen, but its BatchNorm layers were not.

Here a small convolutional backbone with BatchNorm2d is pretrained to recognise the ten scikit-learn digits (standing
in for a downloaded checkpoint), frozen with ``requires_grad_(False)``, and a new linear head learns a new labelling of
the same images: is the digit odd or even?

``backbone_mode`` says how the frozen backbone runs while the head trains:

- ``"eval"`` (the fix): the backbone stays in eval mode for good, so BatchNorm2d normalises with the pretrained
  running statistics and never updates them.
- ``"train"`` (the bug): the backbone follows the model into train mode, so BatchNorm2d normalises with the statistics
  of each batch and keeps updating its running statistics while its weights stay frozen.

Two test metrics tell the story: ``batched_acc`` evaluates the test set in batches, the way Lightning's test loop
runs a model (eval mode); ``single_acc`` runs the same examples one at a time through the team's serving path, which
builds the network afresh and never calls ``eval()``. Only the buggy variant differs between the two.

``norm="layer"`` swaps BatchNorm2d for GroupNorm with one group (layer norm over channels and pixels), which has no
running statistics and no train/eval difference, so both modes are the same computation.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

Norm = Literal["batch", "layer"]
BackboneMode = Literal["eval", "train"]

SPLIT_SEED = 0  # the train/test split never depends on the run seed, so every run is tested on the same images
PRETRAIN_SEED = 1234  # the "downloaded" checkpoint is the same whatever the run seed
PRETRAIN_EPOCHS = 5
FEATURES = 64  # backbone output: 64 channels, averaged over the 4x4 grid


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 8x8 digits as (N, 1, 8, 8) floats in [0, 1], split 70/30 once, stratified by digit."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return tuple(
        train_test_split(images, digits.target, test_size=0.3, stratify=digits.target, random_state=SPLIT_SEED)
    )


def digit_tensors(split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
    """Images and digit labels (0-9) of one split of the fixed split."""
    x_train, x_test, y_train, y_test = _digits_split()
    images, digits = (x_train, y_train) if split == "train" else (x_test, y_test)
    return torch.from_numpy(images), torch.from_numpy(digits).long()


def _norm2d(norm: Norm, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        # One group: normalise each image over all its channels and pixels, the same in train and eval mode.
        return nn.GroupNorm(1, channels)
    raise ValueError(f"Expected argument `norm` to be 'batch' or 'layer' but got {norm!r}")


def make_backbone(norm: Norm) -> nn.Sequential:
    """Three 3x3 convolutions (8x8 -> 4x4 -> 4x4), each followed by a normalisation layer and a ReLU."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        _norm2d(norm, 16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        _norm2d(norm, 32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        _norm2d(norm, 64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),  # global average pooling, as in ResNets
        nn.Flatten(),
    )


@functools.lru_cache(maxsize=2)
def pretrained_backbone_state(norm: Norm) -> dict[str, Tensor]:
    """Weights and running statistics of a backbone pretrained on the original task: which of the ten digits.

    Stands in for a downloaded checkpoint: trained once per process with its own seed, inside ``fork_rng`` so that
    it neither depends on nor disturbs the run's random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PRETRAIN_SEED)
        backbone = make_backbone(norm)
        head = nn.Linear(FEATURES, 10)
        model = nn.Sequential(backbone, head).train()
        images, labels = digit_tensors("train")
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(PRETRAIN_EPOCHS):
            for batch in torch.randperm(len(images)).split(32):
                loss = F.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return {name: value.detach().clone() for name, value in backbone.state_dict().items()}


class DigitNet(nn.Module):
    """Frozen pretrained backbone plus a trainable head: the network the team trains, exports and serves."""

    def __init__(self, norm: Norm, backbone_mode: BackboneMode, num_classes: int) -> None:
        super().__init__()
        if backbone_mode not in ("eval", "train"):
            raise ValueError(f"Expected argument `backbone_mode` to be 'eval' or 'train' but got {backbone_mode!r}")
        self.backbone_mode = backbone_mode
        self.backbone = make_backbone(norm)
        self.backbone.load_state_dict(pretrained_backbone_state(norm))
        self.backbone.requires_grad_(False)  # frozen: only the head learns
        self.head = nn.Linear(FEATURES, num_classes)
        # A freshly built nn.Module is in train mode. Freezing the weights does not freeze BatchNorm's running
        # statistics: that takes eval mode, here and in every later call to train().
        self.train()

    def train(self, mode: bool = True) -> DigitNet:
        super().train(mode)
        if self.backbone_mode == "eval":
            self.backbone.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))


def serve_one(net: DigitNet, image: Tensor) -> int:
    """The team's inference helper: classify one image, the way the deployed service does.

    It calls the network as it was loaded, without ``eval()``: "the backbone is frozen and the head is a plain linear
    layer, so train or eval mode cannot matter". A freshly loaded nn.Module is in train mode, so if the backbone
    follows that mode, BatchNorm2d normalises the single image with statistics over its own pixels, silently.
    """
    with torch.no_grad():
        return int(net(image.unsqueeze(0)).argmax(dim=1).item())


class ParityDigits(pl.LightningDataModule):
    """The new task the head learns: the same digit images, labelled 0 if the digit is even and 1 if it is odd."""

    def __init__(self, batch_size: int = 32, test_batch_size: int = 100) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.test_batch_size = test_batch_size

    def train_dataloader(self) -> DataLoader:
        images, digits = digit_tensors("train")
        return DataLoader(TensorDataset(images, digits % 2), batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader:
        images, digits = digit_tensors("test")
        return DataLoader(TensorDataset(images, digits % 2), batch_size=self.test_batch_size)


class FrozenBackboneClassifier(pl.LightningModule):
    """Trains a new head on top of a frozen pretrained backbone; see the module docstring for ``backbone_mode``."""

    def __init__(self, backbone_mode: BackboneMode = "eval", norm: Norm = "batch", lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = DigitNet(norm, backbone_mode, num_classes=2)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        self.log("train_loss", loss, on_epoch=True, batch_size=len(labels))
        self.log("train_acc", (logits.argmax(1) == labels).float().mean(), on_epoch=True, batch_size=len(labels))
        return loss

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        # Batched evaluation: Lightning's test loop has put the whole model in eval mode, so BatchNorm2d uses its
        # running statistics. In the buggy variant they were updated with the very batches the head was trained on
        # (and the images are those of pretraining), so they fit the head and this number still looks fine.
        batched = (self(images).argmax(1) == labels).float().mean()
        self.log("batched_acc", batched, on_epoch=True, batch_size=len(labels))

        # Single-example inference through the serving path: a freshly built network with the trained weights
        # loaded, in the mode a fresh nn.Module starts in (train), never switched to eval.
        served = DigitNet(self.hparams.norm, self.hparams.backbone_mode, num_classes=2)
        served.load_state_dict(self.net.state_dict())
        served.to(images.device)
        predictions = torch.tensor([serve_one(served, image) for image in images], device=labels.device)
        self.log("single_acc", (predictions == labels).float().mean(), on_epoch=True, batch_size=len(labels))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam((p for p in self.parameters() if p.requires_grad), lr=self.hparams.lr)
