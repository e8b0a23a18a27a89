"""One rank of a run of several processes (normreg/execution/ddp.py launches `python -m normreg.execution.ddp_rank
TMP RANK THREADS`): it trains the job with the worker's own `run_one` and leaves its RunResult for the launcher.
Apart from ddp.py so that the launcher, which the worker calls, does not import the worker back.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from normreg.execution.lifeline import die_with_parent


def rank_main(tmp: str, rank: int, threads: int) -> None:
    """One rank: train the job with the popen twin of its strategy, write its RunResult for the launcher."""
    die_with_parent()
    import torch

    from normreg.execution.worker import run_one

    torch.set_num_threads(threads)
    job, accelerator = pickle.loads((Path(tmp) / "job.pkl").read_bytes())
    result = run_one(job, accelerator)
    out = Path(tmp) / f"rank{rank}.pkl"
    part = out.with_suffix(".part")
    part.write_bytes(pickle.dumps(result))
    os.replace(part, out)


if __name__ == "__main__":
    rank_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
