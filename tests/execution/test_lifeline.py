"""normreg/execution/lifeline.py: a process normreg starts dies with its parent, even one already gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_exits_when_the_parent_is_already_gone() -> None:
    # told a parent that is not its parent (as when the real one died before the signal was armed): exit 1 at once
    code = "from normreg.execution.lifeline import die_with_parent; die_with_parent(parent=1); print('alive')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (1, "")


def test_stays_while_the_parent_lives() -> None:
    code = "from normreg.execution.lifeline import die_with_parent; die_with_parent(); print('alive')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (0, "alive\n")


def test_dies_when_the_parent_is_killed() -> None:
    # the middle process starts a child that arms the signal and sleeps, says the child's pid, then waits; killing
    # the middle one (kill -9: no handler of its runs) must end the child too
    child = ("import time; from normreg.execution.lifeline import die_with_parent; die_with_parent(); "
             "print('armed', flush=True); time.sleep(60)")
    middle = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}], "
              "stdout=subprocess.PIPE, text=True); p.stdout.readline(); print(p.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE, text=True)
    pid = 0
    try:
        pid = int(proc.stdout.readline())  # type: ignore[union-attr]
        assert not _gone(pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
    finally:
        proc.kill()
        proc.wait()
        if pid and not _gone(pid):
            os.kill(pid, 9)
