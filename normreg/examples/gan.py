"""A small GAN whose discriminator uses BatchNorm, trained on a mixture of three Gaussians in the plane.

From the note at the end of the third story in "On the perils of batch norm": when training a GAN, if the
discriminator uses batch norm, make sure its batches always mix real and generated data.

``d_batches`` says how real and generated samples go through the discriminator:

- ``"mixed"``: one batch holding both, in the discriminator step and in the generator step, so BatchNorm normalises
  with the statistics of the mixture, as it does at evaluation time with its running statistics.
- ``"separate"``: one all-real batch and one all-generated batch, the common implementation. In train mode each
  batch is normalised with its own mean and variance, so the discriminator is blind to whatever the per-batch
  normalisation removes (a shift or rescaling of the whole generated batch, for a start), and the generator is not
  pushed to fix it.

The losses are written so that, without BatchNorm, both variants compute the same thing: the discriminator loss is
the mean over all real and generated samples, the generator loss the mean over the generated ones. With
``norm="layer"`` (LayerNorm, per sample) the two variants are therefore the same computation.

The metric a user cares about is how close the generated distribution is to the real one: the energy distance
between 2048 held-out real samples and 2048 generated ones (lower is better). The test also reports how far the mean
of the generated samples is from the mean of the real ones, and the discriminator's accuracy on the held-out real and
generated samples together (eval mode, running statistics).
"""

from __future__ import annotations

import math
from typing import Literal

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

Norm = Literal["batch", "layer"]
DBatches = Literal["mixed", "separate"]

# Three overlapping blobs, 1.7 apart and 0.4 wide, placed on a circle around (1, -1): away from the origin, so a
# generator that gets the location wrong shows up.
MODES = 3
CENTRE = (1.0, -1.0)
RADIUS = 1.0
MODE_STD = 0.4
TRAIN_SEED = 0  # the data never depend on the run seed: every run sees the same samples and is tested on the same ones
TEST_SEED = 1
LATENT_SEED = 2  # the generator is tested on the same latent points in every run


def mode_centres() -> Tensor:
    """The mode centres, evenly spaced on a circle of radius ``RADIUS`` around ``CENTRE``."""
    angles = torch.arange(MODES) * (2 * math.pi / MODES)
    return torch.tensor(CENTRE) + RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def sample_mixture(n: int, seed: int) -> Tensor:
    """``n`` points from the mixture, drawn with a generator of their own so the run seed plays no part."""
    generator = torch.Generator().manual_seed(seed)
    modes = torch.randint(MODES, (n,), generator=generator)
    return mode_centres()[modes] + MODE_STD * torch.randn(n, 2, generator=generator)


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'|: zero exactly when the two distributions are equal."""
    return 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()


class MixtureOfGaussians(pl.LightningDataModule):
    """A fixed training set of real samples, and one held-out test batch."""

    def __init__(self, batch_size: int = 128, train_size: int = 8192, test_size: int = 2048) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.train_size = train_size
        self.test_size = test_size

    def train_dataloader(self) -> DataLoader:
        # drop_last: the two variants then always see equal numbers of real and generated samples.
        dataset = TensorDataset(sample_mixture(self.train_size, TRAIN_SEED))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def test_dataloader(self) -> DataLoader:
        # One batch: the distance is computed between whole sets, not averaged over batches.
        return DataLoader(TensorDataset(sample_mixture(self.test_size, TEST_SEED)), batch_size=self.test_size)


def _norm1d(norm: Norm, features: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(features)
    if norm == "layer":
        return nn.LayerNorm(features)
    raise ValueError(f"Expected argument `norm` to be 'batch' or 'layer' but got {norm!r}")


class MixtureGAN(pl.LightningModule):
    """A GAN with an MLP generator and an MLP discriminator that has a normalisation layer after each hidden layer."""

    def __init__(
        self,
        d_batches: DBatches = "mixed",
        norm: Norm = "batch",
        latent_dim: int = 4,
        hidden: int = 64,
        lr: float = 3e-4,
    ) -> None:
        super().__init__()
        if d_batches not in ("mixed", "separate"):
            raise ValueError(f"Expected argument `d_batches` to be 'mixed' or 'separate' but got {d_batches!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimizers, stepped in turn
        self.generator = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
        )
        self.discriminator = nn.Sequential(
            nn.Linear(2, hidden),
            _norm1d(norm, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            _norm1d(norm, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def generate(self, latent: Tensor) -> Tensor:
        return self.generator(latent)

    def _discriminate(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """Discriminator logits for the real and the generated samples, batched as ``d_batches`` says."""
        if self.hparams.d_batches == "mixed":
            logits = self.discriminator(torch.cat([real, fake])).squeeze(1)
            return logits[: len(real)], logits[len(real) :]
        return self.discriminator(real).squeeze(1), self.discriminator(fake).squeeze(1)

    def training_step(self, batch: tuple[Tensor], batch_idx: int) -> None:
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generate(torch.randn(len(real), self.hparams.latent_dim, device=real.device))

        # Discriminator step: real -> 1, generated -> 0, mean over all samples.
        real_logits, fake_logits = self._discriminate(real, fake.detach())
        d_loss = 0.5 * (
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        # Generator step (non-saturating loss): make the updated discriminator call the generated samples real.
        # The real samples go through the discriminator too, so that in the "mixed" variant they share the batch.
        _, fake_logits = self._discriminate(real, fake)
        g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()

        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, on_epoch=True, batch_size=len(real))

    def test_step(self, batch: tuple[Tensor], batch_idx: int) -> None:
        (real,) = batch
        generator = torch.Generator().manual_seed(LATENT_SEED)
        latent = torch.randn(len(real), self.hparams.latent_dim, generator=generator).to(real.device)
        fake = self.generate(latent)

        # Lightning's test loop runs the model in eval mode: BatchNorm uses running statistics, one mixed batch.
        logits = self.discriminator(torch.cat([real, fake])).squeeze(1)
        targets = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(real.device)
        d_acc = ((logits > 0).float() == targets).float().mean()

        n = len(real)
        self.log("energy_distance", energy_distance(real, fake), on_epoch=True, batch_size=n)
        self.log("mean_error", (fake.mean(dim=0) - real.mean(dim=0)).norm(), on_epoch=True, batch_size=n)
        self.log("d_acc", d_acc, on_epoch=True, batch_size=n)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = (0.5, 0.999)  # the usual GAN setting: less momentum keeps the two players from overshooting
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas),
        ]
