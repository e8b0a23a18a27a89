"""The README's two quick-start commands on a fresh clone in a fresh virtual environment: the wall time of each
and the size of `.venv` after each, as a new user meets them.

    python benchmarks/quickstart.py [--first-only] [--no-tests] [--keep DIR]

The commands are read from the README's "Quick start" section (its first two bash blocks), so what is measured
is what the README says. The repository's committed HEAD is cloned into a temporary folder; pip's cache is
turned off (PIP_NO_CACHE_DIR=1), so every package is fetched and installed as on a fresh machine (packages that
the machine's pip configuration finds on its own disk, such as a local torch wheel, are still read from there).
Each command is a chain of steps joined by `&&`; each step is timed too (run one after another, stopping at the
first that fails, as `&&` does). `--no-tests` leaves out the final `pytest` step, to measure the installs alone.
Measured here, not asserted in tests: the figures depend on the network, the disk and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands(readme: str) -> list[str]:
    """The first two bash blocks of the README's "Quick start" section: setup-and-flagship, then the tests."""
    start = readme.index("## Quick start")
    end = readme.find("\n## ", start + 1)
    blocks = re.findall(r"```bash\n(.*?)```", readme[start : end if end != -1 else None], flags=re.S)
    if len(blocks) < 2:
        raise SystemExit("README: the Quick start section must hold two ```bash blocks (setup and run, then tests)")
    return [b.strip() for b in blocks[:2]]


def venv_size(venv: Path) -> str:
    out = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes)} min {seconds:04.1f} s" if minutes else f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-only", action="store_true", help="measure only the first command")
    parser.add_argument("--no-tests", action="store_true", help="leave out the final pytest step")
    parser.add_argument("--keep", type=Path, help="clone into this (new) folder and keep it")
    args = parser.parse_args()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    if dirty:
        print("note: the working tree has uncommitted changes; the clone measures the committed HEAD", file=sys.stderr)
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    if args.first_only:
        commands = commands[:1]
    tmp = None if args.keep else tempfile.mkdtemp(prefix="normreg-quickstart-")
    clone = args.keep if args.keep else Path(tmp) / "normreg"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
        env.pop("VIRTUAL_ENV", None)
        results = []
        for n, command in enumerate(commands, 1):
            steps = command.split(" && ")
            if args.no_tests and steps[-1].endswith("pytest"):
                steps = steps[:-1]
            timings, code = [], 0
            for step in steps:
                print(f"$ {step}", flush=True)
                start = time.perf_counter()
                proc = subprocess.run(
                    ["bash", "-c", step],
                    cwd=clone,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                timings.append((step, time.perf_counter() - start))
                print("\n".join(proc.stdout.splitlines()[-25:]), flush=True)
                code = proc.returncode
                if code:
                    break
            results.append((n, timings, code, venv_size(clone / ".venv")))
        print()
        for n, timings, code, size in results:
            print(f"command {n}: {_duration(sum(t for _, t in timings))} wall, exit {code}, .venv {size}")
            for step, seconds in timings:
                print(f"  {_duration(seconds):>12}  {step}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
