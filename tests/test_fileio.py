"""normreg/fileio.py: schema versions checked, JSON written atomically with sorted keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normreg.errors import ResultsError
from normreg.fileio import check_schema, write_json_atomic


def test_unknown_schema_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"schema 'normreg.report/2' is not known to normreg .* upgrade"):
        check_schema(tmp_path / "r.json", {"schema": "normreg.report/2"}, "normreg.report/1")
    wrong_kind = "expected a file with schema 'normreg.report/1', found 'normreg.baseline/1'"
    with pytest.raises(ResultsError, match=wrong_kind):
        check_schema(tmp_path / "r.json", {"schema": "normreg.baseline/1"}, "normreg.report/1")


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "b.json"
    write_json_atomic(target, {"b": 1, "a": [1.5]})
    assert target.read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):  # refused before anything is written
        write_json_atomic(target, {"bad": float("nan")})
    assert json.loads(target.read_text()) == {"a": [1.5], "b": 1}

    def fsync_fails(fd: int) -> None:  # the temporary file exists and holds data: a disk error at the end
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("normreg.fileio.os.fsync", fsync_fails)
    with pytest.raises(OSError, match="Input/output error"):
        write_json_atomic(target, {"new": 2})
    assert json.loads(target.read_text()) == {"a": [1.5], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary file left behind
