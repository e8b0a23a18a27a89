"""Watching the processes a command starts: a tag in its environment, which every process it starts inherits
(workers, fork servers, Ray's raylet and workers), found again through `ps` and each process's environment."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path


def new_tag() -> tuple[str, str]:
    """A fresh (name, value) pair to put in a command's environment."""
    return "NORMREG_TEST_TAG", uuid.uuid4().hex


def tagged(tag: str) -> list[tuple[int, int, str]]:
    """(pid, ppid, command) of every live process (as `ps` lists them) whose environment holds the tag."""
    out = subprocess.run(["ps", "-A", "ww", "-o", "pid=,ppid=,stat=,command="], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        pid, ppid, stat, command = (line.split(None, 3) + ["", "", "", ""])[:4]
        if stat.startswith("Z"):
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if tag.encode() in environ.split(b"\0"):
            found.append((int(pid), int(ppid), command[:120]))
    return found


def wait_for(condition: Callable[[], object], what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def none_left(tag: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = tagged(tag)
    assert left == [], f"processes left behind: {left}"
