"""A run directory: created under a unique name, owned by one process for the whole run, read back to resume.

Layout: `<run>/.normreg.lock` (held with an exclusive `flock` while a run writes; it holds the owner's pid),
`<run>/report.json` (written at the end), and per suite `<run>/<suite>/run.json` (what was run: digest, content,
environment), `results.csv` (the tidy table) and `runs.jsonl` (every finished run in full), both appended as each
run finishes. A suite with `checkpoint:` keeps each unfinished run's last checkpoint in
`<run>/<suite>/checkpoints/<variant>/seed-<N>/`, removed once that run has finished (unless the suite keeps them).

Two processes never write one directory: the second is refused with an `InputError` naming the first one's pid.
A directory that holds an earlier run is refused too unless the run is resumed, so nothing is mixed, appended to
or overwritten by accident. Resuming reuses every finished ok run of an unchanged suite and rewrites the tables
with exactly those runs, so a rerun run never appears twice; an unfinished run with a checkpoint continues from it.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normreg.environment import differences
from normreg.errors import InputError, ResultsError, SuiteError
from normreg.execution.results import RunLog, RunResult
from normreg.execution.supervised import command_pid
from normreg.fileio import LOCK_NAME, count_lines, parse_json, read_json, read_text_bounded, write_json_atomic
from normreg.suite.diff import content_changes, summarise
from normreg.suite.model import Suite, metrics_to_json

REPORT_FILE = "report.json"
CHECKPOINTS = "checkpoints"  # <run>/<suite>/checkpoints/<variant>/seed-<N>/epoch<I>.ckpt
FINISHED_MARK = "finished"  # in a kept run's checkpoint folder: the run finished, its checkpoints resume nothing
_CHECKPOINT_NAME = re.compile(r"epoch(\d+)\.ckpt")  # I: the 0-based index of the epoch it was saved after


def new_run_dir(root: Path = Path("runs"), now: _dt.datetime | None = None) -> Path:
    """Create `root/<timestamp>` and return it; `-2`, `-3`, ... when another run took that name first.

    The directory is made with an exclusive `mkdir`, so two runs started in the same second (or the same
    microsecond, in two processes) never share it.
    """
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            n += 1
            continue
        return candidate


def read_runs(path: Path) -> list[RunResult]:
    """The runs of a `runs.jsonl`, last record per (variant, seed) winning; a torn last line (the process was
    killed while writing it) is skipped, a bad line elsewhere is an error naming the line."""
    if not path.exists():
        return []
    lines = read_text_bounded(path, what="a run directory's runs.jsonl").splitlines()
    runs: dict[tuple[str, int], RunResult] = {}
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            r = RunResult.from_json(parse_json(line, f"{path}:{i}"))
        except (ValueError, TypeError, KeyError, AttributeError, ResultsError):
            if i == len(lines):
                break
            raise ResultsError(f"{path}:{i}: not a run record; move the directory away and start a new run") \
                from None
        runs[(r.variant, r.seed)] = r
    return list(runs.values())


@dataclass(frozen=True)
class Resumed:
    """What a resumed suite brings from the interrupted run."""

    kept: tuple[RunResult, ...]  # finished ok runs, reused as they are
    environment_changes: Mapping[str, list[Any]]  # {key: [then, now]} for keys that can change results


class RunDir:
    """A run directory this process holds the lock of; `close()` (or leaving the `with` block) releases it."""

    def __init__(self, path: Path, fd: int, resume: bool, created: bool = False) -> None:
        self.path = path
        self.resume = resume
        self.created = created  # this run made the directory: it goes again if nothing is trained in it
        self._fd: int | None = fd
        self._started: list[str] = []  # the suites whose folders this run made

    # ---------------------------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, *, resume: bool = False, created: bool | None = None) -> RunDir:
        """Lock `path` (created when missing) for this process; refuse a directory another process holds, and,
        unless resuming, one that holds an earlier run's results. `created`: whether this run made the directory
        (default: whether it is missing now); see `discard`."""
        if created is None:
            created = not path.exists()
        if resume and not path.is_dir():
            raise InputError(f"--resume {path}: no such run directory; give the directory an interrupted "
                             "run printed as 'Run directory: ...'")
        if resume and not any(path.glob("*/run.json")):  # before the lock: nothing is left in a wrong folder
            raise InputError(f"--resume {path}: not a run directory (no <suite>/run.json in it); give the "
                             "directory an interrupted run printed as 'Run directory: ...'")
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path} is a file; give a directory (new or empty) for the run")
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InputError(f"cannot create the run directory {path}: {e.strerror}; give another --out") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"cannot lock the run directory {path}: {e.strerror}") from None
            who = f" (pid {holder})" if holder else ""
            raise InputError(f"{path} is in use by another normreg run{who}; wait for it to finish or give "
                             "another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{command_pid()}\n".encode(), 0)
        rundir = cls(path, fd, resume, created and not resume)
        if not resume:
            taken = rundir.earlier_results()
            if taken:
                rundir.close()
                # Appending would mix two runs in one table; overwriting would lose one. Neither is acceptable.
                names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in taken)
                raise InputError(f"{path} already holds the results of an earlier run ({names}); give another "
                                 f"--out, move that directory away, or continue the run with --resume {path}")
        return rundir

    def discard(self) -> bool:
        """When nothing was trained here (no finished run, no report), remove what this run put here: the whole
        directory if it made it, else its lock and suite folders. A stop or a mistake found before training then
        leaves nothing on disk. Never for a resumed run. Returns whether it removed the directory's contents."""
        if self.resume or self.earlier_results():
            return False
        if self.created:
            return remove_run_dir(self.path)
        for name in self._started:
            shutil.rmtree(self.path / name, ignore_errors=True)
        (self.path / LOCK_NAME).unlink(missing_ok=True)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- contents

    def suite_dir(self, name: str) -> Path:
        return self.path / name

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def suite_names(self) -> list[str]:
        """The suites an earlier run recorded here."""
        return sorted(p.parent.name for p in self.path.glob("*/run.json"))

    def earlier_results(self) -> list[Path]:
        """The report and the per-suite folders that hold an earlier run's results (`earlier_results`)."""
        return earlier_results(self.path)

    def start_suite(self, suite: Suite, environment: Mapping[str, Any]) -> tuple[RunLog, Resumed]:
        """Record what this suite runs and open its tables; on resume, what the interrupted run finished.

        Raises `SuiteError` when the suite changed since the interrupted run, naming what changed.
        """
        d = self.suite_dir(suite.name)
        if not d.exists():
            self._started.append(suite.name)
        resumed = Resumed((), {})
        if self.resume:
            resumed = self._resumed(suite, environment)
        write_json_atomic(d / "run.json", {
            "suite": suite.name, "path": str(suite.path), "digest": suite.digest, "reference": suite.reference,
            "alpha": suite.stats.alpha, "seeds": list(suite.seeds), "variants": list(suite.variant_names),
            "stats": {"design": suite.stats.design, "correction": suite.stats.correction,
                      "spending": suite.stats.spending},
            "seed_plan": {"min": suite.seed_plan.min, "max": suite.seed_plan.max} if suite.seed_plan else None,
            "metrics": metrics_to_json(suite.metrics),
            "curves": metrics_to_json(suite.curves.metrics),
            "content": dict(suite.content),
            "environment": dict(environment),
        })
        log = RunLog(d)
        if self.resume:
            log.restart(resumed.kept)
        return log, resumed

    def _meta(self, suite: Suite) -> dict[str, Any] | None:
        meta_path = self.suite_dir(suite.name) / "run.json"
        if not meta_path.exists():
            return None  # a suite the interrupted run never reached: everything runs
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            raise ResultsError(f"{meta_path}: expected a JSON object; move the directory away and start a new run")
        return meta

    def _check_unchanged(self, suite: Suite, meta: Mapping[str, Any]) -> None:
        d = self.suite_dir(suite.name)
        if meta.get("digest") != suite.digest:
            changes = content_changes(meta.get("content"), suite.content) if "content" in meta else []
            what = summarise(changes)
            raise SuiteError(f"suite '{suite.name}' ({suite.path}) changed since the run in {d} was started "
                             f"({what or 'its content differs'}); restore it (with the same --set options) to "
                             "resume, or start a new run without --resume")

    def _resumed(self, suite: Suite, environment: Mapping[str, Any]) -> Resumed:
        d = self.suite_dir(suite.name)
        meta = self._meta(suite)
        if meta is None:
            return Resumed((), {})
        self._check_unchanged(suite, meta)
        seeds = set(suite.seeds)
        names = set(suite.variant_names)
        kept = tuple(sorted((r for r in read_runs(d / "runs.jsonl") if r.ok and r.seed in seeds
                             and r.variant in names), key=lambda r: (r.variant, r.seed)))
        return Resumed(kept, differences(meta.get("environment") or {}, environment))

    def check_resumable(self, suites: Sequence[Suite]) -> None:
        """A resumed run judges the same, unchanged suites as the interrupted one: refuse a suite left out or
        changed (naming what changed), and a directory that holds no run at all."""
        recorded = self.suite_names()
        if not recorded:
            raise InputError(f"--resume {self.path}: not a run directory (no <suite>/run.json in it); give the "
                             "directory an interrupted run printed as 'Run directory: ...'")
        named = {s.name for s in suites}
        left = [n for n in recorded if n not in named]
        if left:
            raise InputError(f"{self.path} also holds suite(s) {', '.join(left)} of the interrupted run; name "
                             "every suite that run had to resume it")
        for s in suites:
            meta = self._meta(s)
            if meta is not None:
                self._check_unchanged(s, meta)


def checkpoint_dir(suite_dir: Path, variant: str, seed: int) -> Path:
    """Where the run (`variant`, `seed`) of the suite whose run directory is `suite_dir` keeps its checkpoints."""
    return suite_dir / CHECKPOINTS / variant / f"seed-{seed}"


def last_checkpoint(directory: Path) -> tuple[Path, int] | None:
    """The newest checkpoint in a run's checkpoint folder and the epochs the run had finished when it was saved;
    None when there is none, or when the run finished (a kept folder). Two files can be there for a moment (the
    new one is written before the old one is removed): the newer wins."""
    if not directory.is_dir() or (directory / FINISHED_MARK).exists():
        return None
    found = [(int(m.group(1)) + 1, p) for p in directory.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name))]
    if not found:
        return None
    epochs, path = max(found)
    return path, epochs


def finish_checkpoints(suite: Suite, suite_dir: Path | None, variant: str, seed: int) -> None:
    """The run (`variant`, `seed`) has finished, ok or failed: remove its checkpoints, with the folders left empty
    up to the suite's `checkpoints/`; or, when the suite keeps them, mark its folder so that they never resume a
    rerun. Nothing for a suite without checkpoints, or a run without a run directory."""
    if suite.checkpoint is None or suite_dir is None:
        return
    directory = checkpoint_dir(suite_dir, variant, seed)
    if suite.checkpoint.keep:
        if directory.is_dir():
            (directory / FINISHED_MARK).touch()
        return
    shutil.rmtree(directory, ignore_errors=True)
    for parent in (directory.parent, directory.parent.parent):  # <variant>/, then checkpoints/
        try:
            parent.rmdir()
        except OSError:
            break  # not empty (another run's checkpoints), or already gone


def checkpointed(suite_dir: Path) -> dict[tuple[str, int], int]:
    """The unfinished runs of a suite's run directory that can continue from a checkpoint: (variant, seed) -> the
    epochs each had finished."""
    found: dict[tuple[str, int], int] = {}
    root = suite_dir / CHECKPOINTS
    for d in root.glob("*/seed-*") if root.is_dir() else ():
        last = last_checkpoint(d)
        if last is not None and d.name[len("seed-"):].isdigit():
            found[(d.parent.name, int(d.name[len("seed-"):]))] = last[1]
    return found


def has_checkpoints(suite_dir: Path) -> bool:
    """Whether a suite's run directory holds a checkpoint an unfinished run can continue from."""
    return bool(checkpointed(suite_dir))


def earlier_results(path: Path) -> list[Path]:
    """The report and the per-suite folders of run directory `path` that hold an earlier run's results or an
    unfinished run's checkpoints (a lock file or an empty table left by a run that never started training do not
    count). Read only: takes no lock. Raises
    `ResultsError` for a results table that is not a regular file."""
    taken: list[Path] = []
    if (path / REPORT_FILE).exists():
        taken.append(path / REPORT_FILE)
    for d in sorted(p for p in path.iterdir() if p.is_dir()):
        if _finished(d) or has_checkpoints(d):
            taken.append(d)
    return taken


def _finished(suite_dir: Path) -> bool:
    """Whether a suite's run directory records a finished run."""
    jsonl = suite_dir / "runs.jsonl"
    return (jsonl.exists() and jsonl.stat().st_size > 0) or _has_rows(suite_dir / "results.csv")


def kept_in(path: Path) -> str:
    """What a stopped or failed run leaves in run directory `path`, for its last line: `finished runs are in P`;
    where unfinished runs left checkpoints (a suite with `checkpoint:`), it says so, since `--resume` continues
    those too. Read only; a directory that cannot be read gets the plain wording."""
    try:
        taken = earlier_results(path) if path.is_dir() else []
        finished = any(not d.is_dir() or _finished(d) for d in taken)  # the report file, or a suite's runs
        # a suite folder was taken for its runs or its checkpoints: look for checkpoints only beside runs
        saved = any(d.is_dir() and (not _finished(d) or has_checkpoints(d)) for d in taken)
    except (OSError, ResultsError):
        saved, finished = False, True
    if saved and finished:
        return f"finished runs, and checkpoints of unfinished ones, are in {path}"
    if saved:
        return f"checkpoints of unfinished runs are in {path}"
    return f"finished runs are in {path}"


def has_results(path: Path) -> bool:
    """Whether the run directory `path` holds a finished run or a report (read only: takes no lock)."""
    return path.is_dir() and bool(earlier_results(path))


def remove_run_dir(path: Path) -> bool:
    """Remove run directory `path`, which its caller found holds no results (`has_results`) and made; returns
    whether it is gone."""
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _has_rows(csv_path: Path) -> bool:
    """Whether the table has a row under its header; reads no further than that row (a FIFO is refused, not
    waited on)."""
    if not os.path.lexists(csv_path):
        return False
    return count_lines(csv_path, 2, what="a run directory's results.csv") > 1
