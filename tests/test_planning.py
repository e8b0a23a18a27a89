"""normreg/judge/planning.py: `plan` and `calibrate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from normreg.errors import InputError
from normreg.judge.planning import plan_suite
from normreg.pipeline import pilot_run
from normreg.run.fake import FakeRunner


def test_the_pilot_run_is_the_callers(tmp_path: Path, write_suite) -> None:
    suite = write_suite()
    with pytest.raises(InputError, match="no pilot given and no stored baseline"):
        plan_suite(suite, baselines=tmp_path / "none")
    asked = []

    def run_pilot(path: Path, seeds: int) -> str:
        asked.append((path, seeds))
        runner = FakeRunner(lambda v, s: {"acc": 0.9 + s / 100, "loss": 0.3 - s / 100})
        return pilot_run(executor=runner, baselines=tmp_path / "none")(path, seeds)

    p = plan_suite(suite, baselines=tmp_path / "none", pilot_seeds=4, run_pilot=run_pilot)
    assert asked == [(suite, 4)] and p.rows and all(r.n_pilot == 4 for r in p.rows)
