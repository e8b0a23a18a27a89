"""normreg/__main__.py, the console script and `python -m normreg`: a command that runs user code starts as its
own supervisor, without importing the command line (typer); every other command goes straight to the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import normreg.__main__ as entry
from normreg import cli
from normreg.execution.supervised import ENV
from normreg.version import __version__

posix = pytest.mark.skipif(os.name != "posix", reason="commands run as two processes on POSIX only")


@pytest.mark.parametrize("argv,supervised", [
    pytest.param(["run", "s.yaml"], True, marks=posix), pytest.param(["--debug", "audit", "s.yaml"], True, marks=posix),
    pytest.param(["plan", "s.yaml"], True, marks=posix), pytest.param(["bisect", "a", "b"], True, marks=posix),
    (["report", "r.json"], False), (["--version"], False), ([], False),
])
def test_a_command_that_runs_user_code_starts_under_its_supervisor(monkeypatch, argv, supervised):
    calls = []
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["normreg", *argv])
    monkeypatch.setattr(entry, "supervise", lambda args: calls.append(("supervise", args)) or 7)
    monkeypatch.setattr(cli, "main", lambda: calls.append(("cli", sys.argv[1:])))
    if supervised:
        with pytest.raises(SystemExit) as e:
            entry.main()
        assert e.value.code == 7 and calls == [("supervise", argv)]
    else:
        entry.main()
        assert calls == [("cli", argv)]


@posix
def test_the_supervising_process_does_not_import_the_command_line():
    code = ("import sys\nsys.argv = ['normreg', 'run', 'suite.yaml']\nimport normreg.__main__ as m\n"
            "m.supervise = lambda args: print(sorted(n for n in ('typer', 'normreg.cli') if n in sys.modules)) or 0\n"
            "m.main()\n")
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert (out.returncode, out.stdout) == (0, "[]\n"), out.stderr


def test_python_dash_m_normreg_is_the_command_line():
    out = subprocess.run([sys.executable, "-m", "normreg", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and __version__ in out.stdout, out.stderr
