"""Imported only by the fork server (it is in the local executor's preload list), never by normreg itself.

The fork server has imported torch and Lightning. When normreg exits, the server sees its pipe close and raises
SystemExit, and the interpreter's teardown of those modules then takes 2 to 3 seconds, during which the server
still holds normreg's stdout and stderr open: whoever reads normreg's output (a pipe, CI, `subprocess.run`) waits
for it. The server holds no state worth tearing down (its forked workers have their own handlers), so it leaves at
once, after the other exit handlers. Workers forked from it exit through multiprocessing's `os._exit` and never
run this handler.

It also dies with normreg: multiprocessing's server ends when its pipe from normreg closes, but only once it is
serving, after its imports of torch and Lightning; normreg killed (kill -9) during its up-front check would leave
it importing, then idle, alone. The parent-death signal ends it the moment normreg ends, however it ends.
"""

from __future__ import annotations

import atexit
import os
import sys

from normreg.execution.lifeline import die_with_parent


def _leave_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)


atexit.register(_leave_now)  # registered first in the server, so it runs last
die_with_parent()
