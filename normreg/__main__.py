"""`normreg`, the console script, and `python -m normreg`.

A command that runs user code (`run`, `audit`, `plan`, `bisect`) starts here as the supervising first process of
normreg.execution.supervisor, without importing the command line's own modules (typer: about 0.3 s); every other
command goes straight to `normreg.cli.main`.
"""

from __future__ import annotations

import sys

from normreg.execution.supervisor import supervise, wanted


def main() -> None:
    """The console script's entry point."""
    if wanted(sys.argv[1:]):
        sys.exit(supervise(sys.argv[1:]))
    from normreg.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
