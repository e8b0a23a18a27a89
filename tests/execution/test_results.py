"""normreg/execution/results.py: the tidy results.csv, each run on disk before the next starts."""

from __future__ import annotations

from pathlib import Path

from normreg.execution.fake import FakeRunner
from normreg.pipeline import run_suites
from tests.conftest import REGRESSION


def test_results_are_tidy_and_complete(cli, write_suite, tmp_path: Path) -> None:
    import pandas as pd

    cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=REGRESSION)
    df = pd.read_csv(tmp_path / "run" / "pair" / "results.csv")
    assert list(df.columns) == ["suite", "variant", "seed", "metric", "value", "status", "duration_s", "error",
                                  "resumed_from_epoch"]
    assert len(df) == 2 * 5 * 2
    twin_acc = df[(df.variant == "twin") & (df.metric == "acc")].sort_values("seed")["value"].tolist()
    assert twin_acc == REGRESSION["twin"]["acc"]


def test_each_run_is_on_disk_before_the_next_starts(tmp_path: Path, write_suite) -> None:
    suite = write_suite(seeds=3)
    csv_path = tmp_path / "run" / "pair" / "results.csv"
    rows_seen: list[int] = []

    def script(variant: str, seed: int) -> dict[str, float]:
        rows_seen.append(len(csv_path.read_text().splitlines()) - 1)
        return {"acc": 0.9 + seed / 100, "loss": 0.3}

    run_suites([suite], out=tmp_path / "run", baselines=tmp_path / "b", executor=FakeRunner(script))
    assert rows_seen == [0, 2, 4, 6, 8, 10]  # two metric rows per finished run, written before the next began
