"""The plain Lightning loop a user would write for the DDP suite: `python ddp_plain.py SEED STRATEGY SYNC OUT`.
Lightning's own launcher re-runs this script for rank 1; rank 0 writes the validation metrics to OUT."""

import json
import sys

import pytorch_lightning as pl
import torch
from ddp_models import Blobs, Net

if __name__ == "__main__":
    seed, strategy, sync, out = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    torch.set_num_threads(1)
    pl.seed_everything(seed, workers=True)
    dm, model = Blobs(), Net()
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, sync_batchnorm=sync, max_epochs=2,
                         deterministic=True, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    metrics = trainer.validate(model, datamodule=dm, verbose=False)[0]
    if trainer.global_rank == 0:
        with open(out, "w") as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f)
