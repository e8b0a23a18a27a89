"""What normreg costs over training itself: `normreg run SUITE --workers 1` against a plain in-process Lightning loop
over the same variants and seeds, and 2 workers against 1 and against two plain loops run side by side.

    python benchmarks/overhead.py                       # the flagship, 3 paired repeats
    python benchmarks/overhead.py suites/gan_discriminator.yaml --repeat 5

Each repeat runs, in fresh processes and in alternating order, the plain loop, `normreg run --workers 1`,
`normreg run --workers 2`, and two plain loops side by side, each over half the runs with one torch thread (what
no harness can beat with 2 workers on this machine). Per-seed values must be identical wherever the torch thread
count per run is the same: --workers 1 against the plain loop, --workers 2 against the two loops side by side (the
script exits 1 otherwise). Where the count differs (2 workers on 2 cores take 1 thread each), the largest
difference is printed: CPU values are bit-identical only at the same thread count.
Prints the medians and the ratios; targets: --workers 1 at most 1.15x the plain loop, 2 workers at most 0.6x of
one on 2 cores, printed beside the bound. A benchmark, not a test: shared machines are noisy, so it reports the
load average beside the numbers.
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
part, parts = (int(x) for x in sys.argv[2].split("/")) if len(sys.argv) > 2 else (0, 1)
if len(sys.argv) > 3:
    import torch
    torch.set_num_threads(int(sys.argv[3]))

def make(target):
    obj = importlib.import_module(target.module)
    for part in target.attr.split("."):
        obj = getattr(obj, part)
    return obj(**dict(target.args))

values = {}
jobs = [(seed, v) for seed in suite.seeds for v in suite.variants]
for seed, v in jobs[part::parts]:
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = make(v.data) if v.data is not None else None
    model = make(v.model)
    pl.seed_everything(seed, workers=True, verbose=False)
    trainer = pl.Trainer(**{"accelerator": "cpu", "devices": 1, "deterministic": True, **v.trainer})
    trainer.fit(model, datamodule=dm)
    out = trainer.test(model, datamodule=dm, verbose=False)
    values[f"{v.name}/{seed}"] = {k: float(x) for k, x in out[0].items()}
import torch
print(json.dumps({"values": values, "seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
'''


Values = dict[str, dict[str, float]]


def _plain(suite: Path) -> tuple[float, Values, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(suite)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    wall = time.perf_counter() - start
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, out["values"], out["threads"]


def _plain_split(suite: Path, parts: int) -> tuple[float, Values, int]:
    """What no harness can beat on this machine: `parts` plain loops started at once, each over its share of the
    jobs with one torch thread (as each of normreg's workers has): the wall time until the last one ends."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", PLAIN, str(suite), f"{i}/{parts}", "1"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in range(parts)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - start
    assert all(p.returncode == 0 for p in procs)
    return wall, {k: v for o in outs for k, v in o["values"].items()}, 1


def _normreg(suite: Path, workers: int, tmp: Path) -> tuple[float, Values, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = Path(tempfile.mkdtemp(dir=tmp))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "normreg.cli", "run", str(suite), "--workers", str(workers),
                    "--accelerator", "cpu", "--out", str(out / "run"), "--baselines", str(out / "none")],
                   cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads((out / "run" / "report.json").read_text())
    threads = {r["threads"] for r in report["runs"]}
    assert len(threads) == 1, threads
    return wall, {f"{r['variant']}/{r['seed']}": r["metrics"] for r in report["runs"]}, threads.pop()


def _largest_difference(a: Values, b: Values) -> float:
    return max(abs(a[k][m] - b[k][m]) for k in a for m in a[k])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default=str(ROOT / "suites" / "domain_adapt.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    suite = Path(args.suite).resolve()
    times: dict[str, list[float]] = {"plain": [], "workers 1": [], "workers 2": [], "plain split 2": []}
    identical = True
    with tempfile.TemporaryDirectory() as t:
        for i in range(args.repeat):
            order = ["plain", "workers 1", "workers 2", "plain split 2"]
            order = order if i % 2 == 0 else order[::-1]
            got, threads = {}, {}
            for name in order:
                wall, got[name], threads[name] = (
                    _plain(suite) if name == "plain" else _plain_split(suite, 2) if name == "plain split 2" else
                    _normreg(suite, int(name[-1]), Path(t)))
                times[name].append(wall)
                print(f"repeat {i + 1} {name:10s} {wall:6.1f}s  {threads[name]} torch threads per run  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            # CPU values are bit-identical for a seed only at the same thread count (reductions split otherwise)
            if got["plain split 2"] != got["workers 2"]:
                identical = False
                print(f"repeat {i + 1}: --workers 2 values differ from the split plain loops' (1 thread each)")
            for name in ("workers 1", "workers 2"):
                if threads[name] == threads["plain"] and got[name] != got["plain"]:
                    identical = False
                    print(f"repeat {i + 1}: {name} values differ from the plain loop's at the same thread count")
                elif threads[name] != threads["plain"]:
                    print(f"repeat {i + 1}: {name} ({threads[name]} threads against {threads['plain']}) differs "
                          f"from the plain loop by at most {_largest_difference(got[name], got['plain']):.2g}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedians over {args.repeat} repeats ({os.cpu_count()} cores): plain {med['plain']:.1f}s, "
          f"--workers 1 {med['workers 1']:.1f}s, --workers 2 {med['workers 2']:.1f}s")
    print(f"--workers 1 / plain loop: {med['workers 1'] / med['plain']:.2f}x (target <= 1.15x)")
    print(f"--workers 2 / --workers 1: {med['workers 2'] / med['workers 1']:.2f}x (target <= 0.6x on 2 cores)")
    print(f"the bound on this machine, 2 plain loops of 1 thread at once / 1 plain loop: "
          f"{med['plain split 2'] / med['plain']:.2f}x ({med['plain split 2']:.1f}s); --workers 2 / that: "
          f"{med['workers 2'] / med['plain split 2']:.2f}x")
    print(f"per-seed values identical at equal thread counts: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
