"""What the working process tells the first process that supervises it (normreg/execution/supervisor.py).

The working process does the work of a command that runs user code; over a pipe it says what it is doing
(`note_phase`), which run directory it holds (`note_run_dir`) and, as its very last act, the exit code it decided
(`note_exit`). This module is the working process's side alone, so that the run directory (which names the
command's pid in its lock) and the executors can use it without importing the supervisor, which uses them.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "NORMREG_SUPERVISED_FD"  # in the second process: the pipe to the first



_PIPE: list[int] = []  # in the working process, once adopted: the pipe's descriptor


def _write(line: str) -> None:
    if not _PIPE:
        return
    try:
        os.write(_PIPE[0], (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def note_phase(text: str) -> None:
    """Say what this process is doing now (`the up-front check of suite 'x'`); named if it ends abruptly."""
    _write(f"phase {text}")


def note_run_dir(path: Path, created: bool) -> None:
    """Say which run directory this process holds, and whether it made it (then it is removed when the process
    ends abruptly before anything trained)."""
    _write(f"rundir {int(created)} {path}")


def note_exit(code: int) -> None:
    """The exit code this process decided: its last words. Without them, its end was not normreg's decision."""
    _write(f"exit {code}")


def supervised() -> bool:
    """Whether this process is a working process with a supervisor (or is about to adopt its pipe)."""
    return bool(_PIPE) or bool(os.environ.get(ENV))


def command_pid() -> int:
    """The process id of the normreg command a user started (and may signal): the first process when this one is
    supervised."""
    return os.getppid() if _PIPE else os.getpid()


def adopt_pipe() -> None:
    """In the working process, at start: take the pipe, and keep it (and its name in the environment) out of
    every process started later (exec or fork: a process user code forks must not hold it open)."""
    fd = os.environ.pop(ENV, None)  # a normreg this process starts (bisect's) supervises itself
    if fd and not _PIPE:
        try:
            os.set_inheritable(int(fd), False)
            _PIPE.append(int(fd))
        except (OSError, ValueError):
            pass
