"""`python tests/fake_cli.py run ...`: the normreg CLI in its own process with a FakeRunner that trains nothing.

For tests that need real processes (two runs at once, a parent killed mid-run). Each run sleeps
`NORMREG_FAKE_DELAY` seconds (default 0.2) and, when `NORMREG_FAKE_LOG` names a file, appends `variant,seed` to it
the moment it starts: the record of what was trained. When `NORMREG_FAKE_GATE` names a file, every run waits
until that file exists. Values depend only on the variant and the seed.
"""

from __future__ import annotations

import os
import time

from normreg import cli
from normreg.execution.fake import FakeRunner


def script(variant: str, seed: int) -> dict[str, float]:
    log = os.environ.get("NORMREG_FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{variant},{seed}\n")
    gate = os.environ.get("NORMREG_FAKE_GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    time.sleep(float(os.environ.get("NORMREG_FAKE_DELAY", "0.2")))
    return {"acc": 0.9 + 0.01 * seed + (0.001 * seed if variant == "twin" else 0.0), "loss": 0.3 + 0.002 * seed}


if __name__ == "__main__":
    cli.make_executor = lambda *args, **kwargs: FakeRunner(script)  # type: ignore[assignment]
    cli.main()
