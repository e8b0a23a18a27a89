"""Die with the parent: the one home of Linux's parent-death signal for every process normreg starts.

The second process of `normreg run` (supervisor.py), the local executor's fork server (forkserver_exit.py), its
workers (worker.py) and the ranks of a run of several processes (ddp_rank.py) each arm it, so killing normreg
(even with kill -9) leaves nothing of its behind. The signal only covers a parent that dies after it is armed, so
a parent that ended first (while the child was still starting) is checked for right after arming. Imports nothing
beyond the standard library: the fork server imports this before torch.
"""

from __future__ import annotations

import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    """Linux's prctl(option, value); False where there is none (another OS, a libc without it)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return True


def adopt_orphans() -> None:
    """Become the "child subreaper" of everything this process starts: their orphans become ours (so they can be
    ended when the run is over) rather than init's. Does nothing off Linux."""
    if sys.platform == "linux":
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies, and exit at once (status 1) if the parent has
    already gone. `parent`: the parent's pid where the caller knows it (exact even when the parent died before
    this call); None: the parent as this process sees it on entry. Does nothing off Linux."""
    if sys.platform != "linux":
        return
    expected = os.getppid() if parent is None else parent
    if not _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL):
        return
    if os.getppid() != expected:  # the parent ended before the signal was armed: it will never come
        os._exit(1)
