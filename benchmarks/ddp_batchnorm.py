"""The distributed BatchNorm story in a plain Lightning loop, no normreg: the gap, and what two processes cost.

Trains the digits classifier of normreg/examples/ddp_domains.py three ways, per seed, each run a fresh plain
script launched the way a user launches one (Lightning's own DDP launcher starts the second process):
  merged               one process, each step a batch of 64 rows, 32 of each domain
  per_domain_ddp       two processes (gloo on the CPU), each reading one domain's 32 rows, plain BatchNorm
  per_domain_ddp_sync  the same with the statistics taken over both processes (SyncBatchNorm's computation;
                       torch's SyncBatchNorm itself refuses CPU modules, see docs/distributed.md)
and prints each run's test accuracy, the mean gap to `merged` with its spread over seeds, and the wall time of a
two-process run against a one-process run (whole process, imports included, and `fit` alone).

    python benchmarks/ddp_batchnorm.py [--seeds 5] [--epochs 20] [--norm batch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# mode: (processes, the norm the model uses or None for --norm); the sync mode's layer is SyncBatchNorm's
# computation with torch.distributed.nn's all-reduce, since torch's SyncBatchNorm refuses CPU modules
MODES = {"merged": (1, None), "per_domain_ddp": (2, None), "per_domain_ddp_sync": (2, "sync_batch")}


def one(mode: str, seed: int, epochs: int, norm: str, out: str) -> None:
    """One run (rank 0 writes test metrics and fit time to `out`); Lightning re-runs this for rank 1."""
    import pytorch_lightning as pl
    import torch

    from normreg.examples.ddp_domains import DomainClassifier, DomainPerProcess

    devices, own_norm = MODES[mode]
    torch.set_num_threads(1)
    pl.seed_everything(seed, workers=True, verbose=False)
    dm, model = DomainPerProcess(), DomainClassifier(norm=own_norm if own_norm and norm == "batch" else norm)
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                         use_distributed_sampler=False, max_epochs=epochs, deterministic=True,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_s = time.perf_counter() - start
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    if trainer.global_rank == 0:
        Path(out).write_text(json.dumps({"fit_s": fit_s, **{k: float(v) for k, v in metrics.items()}}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--norm", default="batch", choices=("batch", "layer"))
    p.add_argument("--one", nargs=2, metavar=("MODE", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]), args.epochs, args.norm, args.out)
        return
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for mode in MODES:
                out = os.path.join(tmp, f"{mode}-{seed}.json")
                start = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--one", mode, str(seed), "--epochs", str(args.epochs),
                                "--norm", args.norm, "--out", out], check=True, capture_output=True)
                r = {"wall_s": time.perf_counter() - start, **json.loads(Path(out).read_text())}
                results[mode].append(r)
                print(f"seed {seed} {mode:20s} test_acc {r['test_acc']:.4f} (source {r['test_acc_source']:.4f}, "
                      f"target {r['test_acc_target']:.4f})  wall {r['wall_s']:.1f} s  fit {r['fit_s']:.1f} s",
                      flush=True)
    base = [r["test_acc"] for r in results["merged"]]
    print(f"\nnorm={args.norm}, {args.epochs} epochs, {args.seeds} seeds; test_acc mean (sd) and paired gap to merged")
    for mode, runs in results.items():
        acc = [r["test_acc"] for r in runs]
        gaps = [a - b for a, b in zip(acc, base)]
        sd = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
        print(f"  {mode:20s} {statistics.mean(acc):.4f} ({statistics.stdev(acc) if len(acc) > 1 else 0:.4f})  "
              f"gap {statistics.mean(gaps):+.4f} (sd {sd:.4f})")
    for key in ("wall_s", "fit_s"):
        one_p = statistics.median(r[key] for r in results["merged"])
        two_p = statistics.median(r[key] for r in results["per_domain_ddp"])
        print(f"  median {key}: 2 processes {two_p:.1f} s vs 1 process {one_p:.1f} s (x{two_p / one_p:.2f})")
    print(f"  cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
