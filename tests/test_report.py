"""Report and file formats: schema versions, atomic writes, nothing finished is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normreg.errors import ResultsError
from normreg.fileio import check_schema, write_json_atomic
from normreg.judge.resultset import load_result_set
from normreg.pipeline import run_suites
from normreg.run.fake import FakeRunner


def test_unknown_schema_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"schema 'normreg.report/2' is not known to normreg .* upgrade"):
        check_schema(tmp_path / "r.json", {"schema": "normreg.report/2"}, "normreg.report/1")
    wrong_kind = "expected a file with schema 'normreg.report/1', found 'normreg.baseline/1'"
    with pytest.raises(ResultsError, match=wrong_kind):
        check_schema(tmp_path / "r.json", {"schema": "normreg.baseline/1"}, "normreg.report/1")


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "b.json"
    write_json_atomic(target, {"b": 1, "a": [1.5]})
    assert target.read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        write_json_atomic(target, {"bad": float("nan")})
    assert json.loads(target.read_text()) == {"a": [1.5], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary file left behind


def test_each_run_is_on_disk_before_the_next_starts(tmp_path: Path, write_suite) -> None:
    suite = write_suite(seeds=3)
    csv_path = tmp_path / "run" / "pair" / "results.csv"
    rows_seen: list[int] = []

    def script(variant: str, seed: int) -> dict[str, float]:
        rows_seen.append(len(csv_path.read_text().splitlines()) - 1)
        return {"acc": 0.9 + seed / 100, "loss": 0.3}

    run_suites([suite], out=tmp_path / "run", baselines=tmp_path / "b", executor=FakeRunner(script))
    assert rows_seen == [0, 2, 4, 6, 8, 10]  # two metric rows per finished run, written before the next began


def test_report_round_trips_through_compare(tmp_path: Path, write_suite) -> None:
    from conftest import REGRESSION

    report = run_suites([write_suite()], out=tmp_path / "run", baselines=tmp_path / "b",
                        executor=FakeRunner(REGRESSION))
    report.write(tmp_path / "r.json")
    rs = load_result_set(str(tmp_path / "r.json"))
    assert rs.values["twin"]["acc"] == dict(enumerate(REGRESSION["twin"]["acc"]))
    assert rs.specs["loss"].goal == "min" and rs.alpha == 0.05
    from_dir = load_result_set(str(tmp_path / "run"))
    assert from_dir.values == rs.values and from_dir.specs == rs.specs
