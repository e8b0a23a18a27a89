"""What a failed run says about itself: a one-line description naming where it failed, and the full traceback.

The one line names the innermost frame of the user's code as `path/relative/to/suite:line in function`; when no
frame is the user's (the error rose inside Lightning or torch), the innermost library frame with its package,
`lightning/pytorch/trainer/trainer.py:line in fit`, so the file can be found. Used by the runner, the fake runner
and the audit.
"""

from __future__ import annotations

import os
import signal
import sysconfig
import traceback
from dataclasses import dataclass
from pathlib import Path

_NORMREG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the normreg package
_EXAMPLES = os.path.join(_NORMREG, "examples")  # the story models are user code, whatever package holds them
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"])
_PACKAGE_DIRS = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class Failure:
    """A failed run's error: `description` for tables and logs, `traceback` in full for the failures folder."""

    description: str
    traceback: str


def _is_library(filename: str) -> bool:
    path = os.path.abspath(filename)
    if filename.startswith("<"):
        return True
    if path.startswith(_NORMREG + os.sep) and not path.startswith(_EXAMPLES + os.sep):
        return True
    parts = Path(path).parts
    return any(p in _PACKAGE_DIRS for p in parts) or path.startswith(_STDLIB + os.sep)


def _under(path: str, root: str) -> str | None:
    try:
        rel = os.path.relpath(path, root)
    except ValueError:  # another drive
        return None
    return None if rel.startswith("..") else rel.replace(os.sep, "/")


def frame_location(filename: str, root: Path | None = None) -> str:
    """A frame's file as a reader finds it: relative to `root` (the suite's folder) or the working directory
    for user code; from its package (`lightning/pytorch/...`, `normreg/execution/...`) for library code."""
    if filename.startswith("<"):
        return filename
    path = os.path.abspath(filename)
    parts = Path(path).parts
    for marker in _PACKAGE_DIRS:
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            return "/".join(parts[i + 1:])
    for base in (_STDLIB, os.path.dirname(_NORMREG)):
        rel = _under(path, base)
        if rel is not None and _is_library(path):
            return rel
    for base in ([str(root)] if root is not None else []) + [os.getcwd()]:
        rel = _under(path, os.path.abspath(base))
        if rel is not None:
            return rel
    return path


def describe_error(exc: BaseException, root: Path | None = None) -> str:
    """`Type: first line of the message (at where:line in function)`; see the module docstring for `where`."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not _is_library(f.filename)]
    frame = (user or frames or [None])[-1]
    where = f" (at {frame_location(frame.filename, root)}:{frame.lineno} in {frame.name})" if frame else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def describe_failure(exc: BaseException, root: Path | None = None) -> Failure:
    """The description and the full traceback (chained exceptions included), formatted where the error happened:
    a traceback object does not survive being sent back from a worker process."""
    return Failure(describe_error(exc, root), "".join(traceback.format_exception(exc)))


def describe_exit(code: int | None) -> str:
    """How a child process ended, from its exit status as `multiprocessing`/`subprocess` give it: `exit code N`,
    `killed by SIGKILL` (a negative status), `killed by signal N` for a number the signal module does not name,
    or `still running` (None)."""
    if code is None:
        return "still running"
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
