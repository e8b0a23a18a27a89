"""The one rule for the names a user gives (suites, variants, metrics), checked once where the name is read.

A name travels: into file and folder names (`<run>/<suite>/`, `baselines/<suite>@<device>.json`,
`failures/<variant>-seed<N>.txt`, and the temporary files written beside each), into JSON, CSV, JUnit XML, HTML,
Markdown and the terminal, and into the script `normreg repro` writes. Markup and the script encode every name
where it goes (`render.escape`, `repr`); what no encoding can save is refused here, up front, before anything runs:

- not a non-empty string;
- a character that is not printable: control characters, line and paragraph separators, bidirectional and other
  format characters, lone surrogates, non-characters (XML cannot hold most of them, a terminal line breaks or
  lies with them, and a file system or UTF-8 encoder refuses a surrogate);
- more than `MAX_NAME_BYTES` bytes of UTF-8, so that every file named after it stays within the 255-byte limit of
  a file name;
- for names that become file names (suites and variants): `/`, `\\`, `#` (it separates `PATH#variant`), a
  leading `.`, and names the run directory already uses (`report.json`); for suites also `@`, which separates a
  suite from its device class in a keyed baseline's file name (`<suite>@<device>.json`).
"""

from __future__ import annotations

from typing import Literal

from normreg.fileio import describe_value

# The longest name is followed by at most "@<device class>.json" and a temporary file's ".XXXXXXXX.tmp", or by
# "-seed4294967295.txt": 128 bytes leaves room for both within 255.
MAX_NAME_BYTES = 128
RESERVED = ("report.json",)  # the run directory's own files beside the suites' folders (compared case-folded)

Role = Literal["suite", "variant", "metric"]
_FORBIDDEN: dict[Role, str] = {"suite": "/\\#@", "variant": "/\\#", "metric": ""}


def name_problem(name: object, role: Role) -> str | None:
    """None when `name` may be used as a `role` name; else what is wrong with it and what to do, in one line."""
    if not isinstance(name, str) or not name:
        return f"a name must be a non-empty string, found {describe_value(name, yaml=True)}"
    bad = next((c for c in name if not (c.isprintable() or c == " ")), None)
    if bad is not None:
        return (f"a name must hold only printable characters (no control characters, separators, format "
                f"characters or surrogates); {ascii(bad)} at position {name.index(bad)} is not: remove it")
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return (f"a name is at most {MAX_NAME_BYTES} bytes (UTF-8), as it becomes part of file names; this one is "
                f"{size}: shorten it")
    forbidden = [c for c in _FORBIDDEN[role] if c in name]
    if forbidden:
        return f"a {role} name cannot hold {', '.join(repr(c) for c in forbidden)}: it becomes part of file names"
    if role != "metric" and name.startswith("."):
        return f"a {role} name cannot start with '.': it would name a hidden file"
    if role == "suite" and name.casefold() in RESERVED:
        return f"'{name}' is a file of the run directory; name the suite otherwise"
    return None
