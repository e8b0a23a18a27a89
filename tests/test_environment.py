"""normreg/environment.py: the fingerprint that travels with reports and baselines, which of its differences are
reported, the device class that names a per-device baseline, and the commit with its dirty mark."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from normreg.environment import BASELINE_KEYS, COMPARED_KEYS, device_class, differences, fingerprint, git_commit
from normreg.version import __version__


@pytest.mark.parametrize("device,expected", [
    ("cpu", "cpu"), ("cuda:NVIDIA H200 x8", "cuda-NVIDIA-H200"), ("cuda:NVIDIA H200", "cuda-NVIDIA-H200"),
    ("  mps:Apple M2 / Pro x2 ", "mps-Apple-M2-Pro"), (None, "unknown"), ("", "unknown"), ("///", "unknown"),
])
def test_the_device_class_is_the_model_without_the_count_in_file_name_characters(device, expected):
    assert device_class(device) == expected
    assert BASELINE_KEYS["device"]({"device": device}) == expected


def test_only_keys_that_can_change_results_and_that_both_sides_hold_are_differences():
    stored = {"torch": "2.2.0", "python": "3.11.7", "date": "2025-01-01", "git_commit": "a", "device": "cpu"}
    current = {"torch": "2.3.0", "python": "3.11.7", "date": "2025-02-01", "git_commit": "b"}
    assert differences(stored, current) == {"torch": ["2.2.0", "2.3.0"]}
    assert {"date", "git_commit"}.isdisjoint(COMPARED_KEYS)


def _git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=where,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_the_commit_is_the_head_marked_dirty_by_changed_tracked_files_only(tmp_path: Path):
    assert git_commit(tmp_path) is None  # not a repository
    _git(tmp_path, "init", "-q")
    (tmp_path / "model.py").write_text("x = 1\n")
    _git(tmp_path, "add", "model.py")
    _git(tmp_path, "commit", "-qm", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_the_fingerprint_says_which_normreg_python_and_torch_ran_where_and_when(tmp_path: Path):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    fp = fingerprint(device="cpu", where=tmp_path)
    assert (fp["normreg"], fp["device"], fp["git_commit"]) == (__version__, "cpu", None)
    assert fp["python"] == platform.python_version() and fp["torch"] == metadata.version("torch")
    assert fp["platform"] == f"{platform.system()}-{platform.machine()}"
    assert before <= dt.datetime.fromisoformat(fp["date"]) <= dt.datetime.now(dt.timezone.utc)
