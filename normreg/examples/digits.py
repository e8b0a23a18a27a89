"""Two-domain handwritten digits: clean scans and a washed-out, low-contrast copy.

The 8x8 digits bundled with scikit-learn are split into two disjoint halves. The "source" half keeps its
pixels; the "target" half is squeezed towards grey, ``0.5 + contrast * (x - 0.5)``, as if scanned on a
faded machine. Both domains hold the same kind of images, so a single classifier can serve both, but their
input statistics differ, which is exactly what batch normalisation is sensitive to.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

DOMAINS = ("source", "target")


class TwoDomainDigits(pl.LightningDataModule):
    """Digits from two domains: each training step sees one batch from each domain.

    The train dataloader is a dict ``{"source": loader, "target": loader}``; Lightning combines it so that
    every training batch is ``{"source": (x, y), "target": (x, y)}``. The test dataloader covers both
    domains' held-out images, as ``(x, y, domain)`` with ``domain`` 0 for source and 1 for target.

    The split depends only on ``split_seed``, never on the run seed, so every variant and every seed is
    scored on the same held-out images; shuffling of the training batches follows the global seed. The
    validation dataloader serves the same held-out images (without the domain), so that each epoch's
    validation accuracy draws a learning curve of what the test measures at the end.
    """

    def __init__(
        self,
        batch_size: int = 32,
        contrast: float = 0.4,
        test_fraction: float = 0.3,
        split_seed: int = 1234,
        test_batch_size: int = 1024,
    ) -> None:
        """Configure the data.

        Args:
            batch_size: images per domain per training step (a step sees twice this many).
            contrast: how much of the pixel range the target domain keeps; 1 makes it identical to source.
            test_fraction: share of each domain's images held out for testing.
            split_seed: seed of the fixed domain/train/test split.
            test_batch_size: images per test batch; large, since evaluation is cheap.
        """
        super().__init__()
        if not 0.0 < contrast <= 1.0:
            raise ValueError(f"Expected argument `contrast` to be in (0, 1] but got {contrast}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"Expected argument `test_fraction` to be in (0, 1) but got {test_fraction}")
        self.batch_size = batch_size
        self.contrast = contrast
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.test_batch_size = test_batch_size
        self.train_sets: dict[str, TensorDataset] = {}
        self.test_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load the digits and build the fixed, disjoint split of both domains."""
        if self.test_set is not None:
            return
        digits = load_digits()
        x = digits.data.astype(np.float32) / 16.0  # pixels are integers 0..16
        y = digits.target.astype(np.int64)
        # A private generator, so the split is the same whatever seed the run was given.
        order = np.random.default_rng(self.split_seed).permutation(len(x))
        halves = {"source": order[0::2], "target": order[1::2]}

        test_x, test_y, test_domain = [], [], []
        for code, domain in enumerate(DOMAINS):
            idx = halves[domain]
            xd = x[idx] if domain == "source" else 0.5 + self.contrast * (x[idx] - 0.5)
            yd = y[idx]
            n_test = int(round(self.test_fraction * len(idx)))
            self.train_sets[domain] = TensorDataset(torch.from_numpy(xd[n_test:]), torch.from_numpy(yd[n_test:]))
            test_x.append(xd[:n_test])
            test_y.append(yd[:n_test])
            test_domain.append(np.full(n_test, code, dtype=np.int64))

        self.test_set = TensorDataset(
            *(torch.from_numpy(np.concatenate(parts)) for parts in (test_x, test_y, test_domain))
        )

    def train_dataloader(self) -> dict[str, DataLoader]:
        # drop_last keeps every BatchNorm batch full-sized and the two domains' batches the same size.
        return {
            domain: DataLoader(self.train_sets[domain], batch_size=self.batch_size, shuffle=True, drop_last=True)
            for domain in DOMAINS
        }

    def val_dataloader(self) -> DataLoader:
        assert self.test_set is not None, "call setup() first"
        # A private generator: every DataLoader draws a base seed when it is iterated, and drawing it from the
        # global generator would shift the training shuffles of every later epoch.
        return DataLoader(self.test_set, batch_size=self.test_batch_size, shuffle=False,
                          generator=torch.Generator().manual_seed(self.split_seed))

    def test_dataloader(self) -> DataLoader:
        assert self.test_set is not None, "call setup() first"
        return DataLoader(self.test_set, batch_size=self.test_batch_size, shuffle=False)
