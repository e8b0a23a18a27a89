"""The process that decides the exit code is never one that user code can end.

`normreg run` (and every command that imports user code) runs as two processes. The first, started by the
console script, runs no user code and imports nothing heavy: it starts the second, which does the work (loads
suites, imports and builds models, trains with `--workers 0`), and waits. The second tells the first, over a pipe,
what it is doing (`note_phase`), which run directory it holds (`note_run_dir`) and, as its very last act, the exit
code it decided (`note_exit`). A second process that ends without saying its exit code ended abruptly: user code
called `os._exit`, crashed in native code (a segfault) or was killed. The first then reports a failed run (exit 3)
in one line naming the phase, and removes a run directory in which nothing was trained; exit 0 is never the
accident of a process that disappeared.

The first process also: forwards SIGINT, SIGTERM and SIGHUP to the second (`kill PID` stops the run as Ctrl-C
does; a SIGINT that the shell left ignored for a background job stays ignored in both), dies with nothing left
when killed (the second gets the parent-death signal, its fork server and workers theirs), and, as the "child
subreaper" of everything the run starts, ends any process user code forked and left running once the run is over.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from normreg.errors import ExitCode
from normreg.execution.failure import describe_exit
from normreg.execution.lifeline import adopt_orphans, die_with_parent
from normreg.execution.supervised import ENV, supervised

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_POLL_S = 0.2
_LEFT_GRACE_S = 2.0  # how long the fork server and the resource tracker get to end by themselves


# ------------------------------------------------------------------------------------------ the first process

COMMANDS = ("run", "audit", "plan", "bisect")  # the commands that run user code


def wanted(argv: list[str]) -> bool:
    """Whether `normreg <argv>` runs as two processes: a command that runs user code, on POSIX, not already the
    working process."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return os.name == "posix" and not supervised() and command in COMMANDS


def _entry() -> list[str]:
    """How the second process starts as this one did: the same script (the console script, or a wrapper script
    of the user's or of the tests), or `-m normreg.cli` (without the working directory on the path, as the
    console script has it) when this process was started as `-m normreg.cli` or `-m normreg`."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] not in ("", "-c") else None
    package = Path(__file__).resolve().parents[1]
    if script is None or not script.is_file() or script in (package / "cli.py", package / "__main__.py"):
        return ["-P", "-m", "normreg.cli"]
    return [str(script)]


def supervise(argv: list[str]) -> int:
    """Run `normreg <argv>` in a second process and return the exit code it decided, or `ExitCode.RUN_FAILED` (3)
    with one line on stderr when it ended without deciding one."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env[ENV] = str(write_fd)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the normreg package: importable there
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    adopt_orphans()  # orphans of the run become ours, and are ended at the end
    # die_with_parent runs in the second process between fork and exec, told this process's pid: exact
    child = subprocess.Popen([sys.executable, *_entry(), *argv], env=env, pass_fds=(write_fd,),
                             preexec_fn=partial(die_with_parent, os.getpid()) if sys.platform == "linux" else None)
    os.close(write_fd)

    def forward(signum: int, frame: object) -> None:
        try:
            child.send_signal(signum)
        except OSError:
            pass

    for s in _FORWARDED:
        if signal.getsignal(s) != signal.SIG_IGN:  # a SIGINT ignored for a background job stays ignored
            signal.signal(s, forward)
    said: dict[str, str] = {}
    buffer = b""
    while True:
        ready, _, _ = select.select([read_fd], [], [], _POLL_S)
        if ready:
            chunk = os.read(read_fd, 65536)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                kind, _, rest = line.decode("utf-8", "replace").partition(" ")
                said[kind] = rest
            if chunk:
                continue
        if child.poll() is not None:
            break
    status = child.wait()
    os.close(read_fd)
    _end_leftovers(child.pid)
    if "exit" in said:
        try:
            return int(said["exit"])
        except ValueError:
            pass
    return _abrupt(status, said, argv)


def resume_command(run_dir: Path, argv: list[str] | None = None) -> str:
    """This command line with `--resume RUN_DIR` in place of `--out`/`--resume`, ready to paste."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--out", "--resume"):
            skip = True
            continue
        if a.startswith(("--out=", "--resume=")):
            continue
        kept.append(a)
    return shlex.join(["normreg", *kept, "--resume", str(run_dir)])


def _abrupt(status: int, said: dict[str, str], argv: list[str]) -> ExitCode:
    if status < 0:
        how = describe_exit(status) + (": a crash in native code" if -status in (signal.SIGSEGV, signal.SIGBUS,
                                                                               signal.SIGILL, signal.SIGFPE,
                                                                               signal.SIGABRT) else "")
    else:
        how = f"exit code {status} without finishing: code it ran called os._exit"
    phase = said.get("phase", "starting")
    where = ""
    if "rundir" in said:
        created, _, path = said["rundir"].partition(" ")
        where = _left_run_dir(Path(path), created == "1")
    print(f"RunError: normreg's working process ended abruptly during {phase} ({how}); the run failed{where}",
          file=sys.stderr, flush=True)
    if where:
        print(f"Continue with: {resume_command(Path(said['rundir'].partition(' ')[2]), argv)}", file=sys.stderr,
              flush=True)
    return ExitCode.RUN_FAILED


def _left_run_dir(path: Path, created: bool) -> str:
    """Remove a run directory in which nothing was trained, if this run made it; else name it. One whose results
    cannot be read is kept, and named with the reason."""
    from normreg.errors import ResultsError
    from normreg.execution.rundir import has_results, kept_in, remove_run_dir

    try:
        if not has_results(path):
            if created:
                remove_run_dir(path)
            return ""
    except ResultsError as e:
        return f"; the run directory {path} was kept: {e}"
    except OSError:
        pass
    return f"; {kept_in(path)}"


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of this process's children, from /proc (Linux)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                found.append((int(entry), cmd))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _end_leftovers(child: int) -> None:
    """After the working process ended: every process still alive below this one is left over (orphans become
    ours as the subreaper). User code's own processes are killed first, so the fork server and the resource
    tracker, whose pipes they may hold, then end by themselves (the tracker cleaning up what it tracks); whatever
    is still there after a grace period is killed."""
    me = os.getpid()

    def left() -> list[tuple[int, str]]:
        _reap()
        return [(p, c) for p, c in _children(me) if p != child]

    ours = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")
    for pid, cmd in left():
        if not any(o in cmd for o in ours):
            _kill(pid)
    deadline = time.monotonic() + _LEFT_GRACE_S
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid, _ in left():
        _kill(pid)
    _reap()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
