"""What normreg costs over training itself: `normreg run SUITE --workers 1` against a plain in-process Lightning loop
over the same variants and seeds, and 2 workers against 1.

    python benchmarks/overhead.py                       # the flagship, 3 paired repeats
    python benchmarks/overhead.py suites/gan_discriminator.yaml --repeat 5

Each repeat runs, in fresh processes and in alternating order, the plain loop, `normreg run --workers 1` and
`normreg run --workers 2`; the per-seed values of all three must be identical (the script exits 1 otherwise).
Prints the medians and the ratios; targets: --workers 1 at most 1.15x the plain loop, 2 workers at most 0.6x of
one on 2 cores. A benchmark, not a test: shared machines are noisy, so it reports the load average beside the
numbers.
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

ROOT = Path(__file__).resolve().parent.parent

# The plain loop: what a user would write by hand to train the suite's variants over its seeds, in one process.
# It seeds, builds and trains exactly as normreg's worker does, so the values must come out identical.
PLAIN = r'''
import json, sys, time
start = time.perf_counter()
import importlib
import pytorch_lightning as pl
from normreg.suite.spec import load_suite
from normreg.suite.targets import importable

suite = load_suite(sys.argv[1])
importable([suite.directory])

def make(target):
    obj = importlib.import_module(target.module)
    for part in target.attr.split("."):
        obj = getattr(obj, part)
    return obj(**dict(target.args))

values = {}
for seed in suite.seeds:
    for v in suite.variants:
        pl.seed_everything(seed, workers=True, verbose=False)
        dm = make(v.data) if v.data is not None else None
        model = make(v.model)
        pl.seed_everything(seed, workers=True, verbose=False)
        trainer = pl.Trainer(**{"accelerator": "cpu", "devices": 1, "deterministic": True, **v.trainer})
        trainer.fit(model, datamodule=dm)
        out = trainer.test(model, datamodule=dm, verbose=False)
        values[f"{v.name}/{seed}"] = {k: float(x) for k, x in out[0].items()}
print(json.dumps({"values": values, "seconds": time.perf_counter() - start}))
'''


def _plain(suite: Path) -> tuple[float, dict[str, dict[str, float]]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(suite)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    wall = time.perf_counter() - start
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])["values"]


def _normreg(suite: Path, workers: int, tmp: Path) -> tuple[float, dict[str, dict[str, float]]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = Path(tempfile.mkdtemp(dir=tmp))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "normreg.cli", "run", str(suite), "--workers", str(workers),
                    "--accelerator", "cpu", "--out", str(out / "run"), "--baselines", str(out / "none")],
                   cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads((out / "run" / "report.json").read_text())
    return wall, {f"{r['variant']}/{r['seed']}": r["metrics"] for r in report["runs"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default=str(ROOT / "suites" / "domain_adapt.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    suite = Path(args.suite).resolve()
    times: dict[str, list[float]] = {"plain": [], "workers 1": [], "workers 2": []}
    identical = True
    with tempfile.TemporaryDirectory() as t:
        for i in range(args.repeat):
            order = ["plain", "workers 1", "workers 2"] if i % 2 == 0 else ["workers 2", "workers 1", "plain"]
            got = {}
            for name in order:
                wall, values = _plain(suite) if name == "plain" else _normreg(suite, int(name[-1]), Path(t))
                times[name].append(wall)
                got[name] = values
                print(f"repeat {i + 1} {name:10s} {wall:6.1f}s  load {os.getloadavg()[0]:.1f}", flush=True)
            for name in ("workers 1", "workers 2"):
                if got[name] != got["plain"]:
                    identical = False
                    print(f"repeat {i + 1}: {name} values differ from the plain loop's")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedians over {args.repeat} repeats ({os.cpu_count()} cores): plain {med['plain']:.1f}s, "
          f"--workers 1 {med['workers 1']:.1f}s, --workers 2 {med['workers 2']:.1f}s")
    print(f"--workers 1 / plain loop: {med['workers 1'] / med['plain']:.2f}x (target <= 1.15x)")
    print(f"--workers 2 / --workers 1: {med['workers 2'] / med['workers 1']:.2f}x (target <= 0.6x on 2 cores)")
    print(f"per-seed values identical: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
