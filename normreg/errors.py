"""The exit codes and the exception tree. Each class says its exit code; the CLI exits with it, the library never
exits.

    NormregError            base: anything normreg reports to a user (exit 3 unless a subclass says otherwise)
    ├── InputError          bad input (exit 2)
    │   ├── SuiteError      a suite file: names file, line and key path
    │   └── ResultsError    a report, run directory, baseline or CSV that cannot be read
    └── RunError            training could not be carried out at all (exit 3)

A run that fails is not an exception: it is a recorded result, and the report's verdict is "error" (exit 3).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code a normreg command gives (the README's and docs/commands.md's table; tests check both).
    `bisect` answers another question with the same numbers: its outcomes are `BisectExit`."""

    PASS = 0  # nothing failed (known bugs caught as declared by `expect` do not fail)
    FAIL = 1  # a regression, a non-equivalent pair, an expectation that no longer holds (audit: an error finding)
    BAD_INPUT = 2  # usage, a suite, report, baseline or CSV file that cannot be used
    RUN_FAILED = 3  # a training run failed, or normreg itself could not finish; takes precedence over FAIL
    STOPPED_SIGINT = 128 + signal.SIGINT  # 130: stopped by Ctrl-C; the finished runs are kept
    STOPPED_SIGTERM = 128 + signal.SIGTERM  # 143: stopped by `kill`; the finished runs are kept

    @classmethod
    def stopped_by(cls, signum: int) -> ExitCode:
        """The exit code of a command a signal stopped, 128 + the signal as shells report it (SIGINT or SIGTERM:
        the signals normreg handles)."""
        return cls(128 + signum)


class BisectExit(IntEnum):
    """`normreg bisect`'s exit codes: its outcomes (`BisectResult.outcome`), and bad input as every command's."""

    FOUND = 0  # the first bad commit was found
    NOT_WORSE = 1  # the bad commit is not worse than the good one
    BAD_INPUT = ExitCode.BAD_INPUT  # not a git repository, an unknown revision or variant or metric, ...
    UNDECIDED = 3  # skipped or inconclusive commits hide the culprit, or an end of the range could not be judged


class NormregError(Exception):
    """Base class of every error normreg reports to a user."""

    exit_code: ExitCode = ExitCode.RUN_FAILED


class InputError(NormregError):
    """Bad input: a usage error, a suite, result or baseline file that cannot be used."""

    exit_code = ExitCode.BAD_INPUT


class SuiteError(InputError):
    """A suite file that cannot be loaded; the message names the file, the line and the key path."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.detail = message
        where = ""
        if path is not None:
            where = path if line is None else f"{path}:{line}"
        if key:
            where = f"{where}: {printable(key)}" if where else printable(key)
        super().__init__(f"{where}: {message}" if where else message)


class ResultsError(InputError):
    """A report, run directory, baseline or CSV file that cannot be read or does not fit. Raised by the readers
    of `normreg.fileio` with `file_problem`, it also carries the file, the `reason` without the file, the `line`
    where there is one, and whether the file was `missing`."""

    path: str | None = None
    reason: str | None = None
    line: int | None = None
    missing: bool = False


def file_problem(path: object, reason: str, *, line: int | None = None, missing: bool = False) -> ResultsError:
    """A `ResultsError` reading `path:line: reason`, with its parts kept for callers that re-word it."""
    e = ResultsError(f"{path}:{line}: {reason}" if line is not None else f"{path}: {reason}")
    e.path, e.reason, e.line, e.missing = str(path), reason, line, missing
    return e


class RunError(NormregError):
    """Training could not be carried out (as opposed to one run failing, which is a recorded result)."""


def printable(text: str) -> str:
    """`text` with control characters written as escapes, so an error stays one readable line."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def did_you_mean(word: object, options: Iterable[str], prefix: str = "") -> str:
    """` Did you mean 'x'?` for the closest of `options` to a misspelt `word`, or an empty string."""
    import difflib

    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" Did you mean '{prefix}{close[0]}'?" if close else ""
