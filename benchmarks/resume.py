"""What `checkpoint:` and `--resume` save after a `kill -9`: the epochs a resumed run trains against a restart
from epoch 0, and whether the resumed run's value equals an uninterrupted run's.

A run of E epochs (tests/data/suites/resumable.yaml: a user's `lightning.pytorch` model with dropout, momentum, a
per-epoch learning-rate schedule and shuffled batches) saves a checkpoint every N epochs. The whole `normreg run`
process group is killed with SIGKILL once the checkpoint after epoch K exists; `normreg run --resume` then
finishes it, and an uninterrupted run gives the value to match. Epochs are counted from the file the model
appends each trained epoch to, not from the clock.

    python benchmarks/resume.py [--epochs 12] [--every 3] [--kill-after 6]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from normreg.execution.rundir import checkpoint_dir, last_checkpoint

SUITE = Path(__file__).resolve().parent.parent / "tests" / "data" / "suites" / "resumable.yaml"


def _run(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "normreg", "run", str(SUITE), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def _epochs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _record(run: Path) -> dict[str, object]:
    (record,) = [json.loads(x) for x in (run / "resumable" / "runs.jsonl").read_text().splitlines()]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=6, help="kill once the checkpoint after this epoch exists")
    parser.add_argument("--epoch-seconds", type=float, default=0.5, help="each epoch's extra length (a sleep)")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = root / "epochs.log"
        common = ["--workers", "0", "--baselines", str(root / "b"), "--set", f"trainer.max_epochs={a.epochs}",
                  "--set", f"checkpoint={{every_n_epochs: {a.every}}}",
                  "--set", f"variants.a.model.args={{epochs_log: {log}, epoch_seconds: {a.epoch_seconds}}}"]
        run = root / "run"
        killed = _run([*common, "--out", str(run)], start_new_session=True)
        folder = checkpoint_dir(run / "resumable", "a", 0)
        while (found := last_checkpoint(folder)) is None or found[1] < a.kill_after:
            if killed.poll() is not None:
                sys.exit("the run finished before it could be killed; raise --epoch-seconds")
            time.sleep(0.01)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        before = _epochs(log)
        saved = (last_checkpoint(folder) or (None, 0))[1]
        start = time.perf_counter()
        if _run([*common, "--resume", str(run)]).wait() != 0:
            sys.exit("the resumed run failed")
        resume_s = time.perf_counter() - start
        by_resume = _epochs(log) - before
        whole_log = _epochs(log)
        start = time.perf_counter()
        if _run([*common, "--out", str(root / "whole")]).wait() != 0:
            sys.exit("the uninterrupted run failed")
        restart_s = time.perf_counter() - start
        by_restart = _epochs(log) - whole_log
        resumed, whole = _record(run), _record(root / "whole")
        print(f"run of {a.epochs} epochs, a checkpoint every {a.every}, killed (SIGKILL, whole process group) "
              f"after {before} epochs had started training; the last checkpoint was saved after epoch {saved}")
        k = resumed.get('resumed_from_epoch')
        print(f"epochs trained by the resume:           {by_resume} (resumed_from_epoch={k})")
        print(f"epochs trained by a restart from 0:     {by_restart}")
        print(f"epochs saved by resuming:               {by_restart - by_resume}")
        print(f"value equals the uninterrupted run's:   {resumed['metrics'] == whole['metrics']} "
              f"({resumed['metrics']} vs {whole['metrics']})")
        print(f"curves equal the uninterrupted run's:   {resumed['history'] == whole['history']}")
        print(f"wall time of the resume vs the restart (each with its imports): {resume_s:.1f} s vs {restart_s:.1f} s")
        print(f"checkpoints left after the finished run: {(run / 'resumable' / 'checkpoints').exists()}")


if __name__ == "__main__":
    main()
