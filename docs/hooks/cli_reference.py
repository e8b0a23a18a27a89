"""MkDocs hook: the command reference, generated from normreg's CLI at build time so it cannot drift.

`mkdocs.yml` lists this file under `hooks:`. A page holding the marker `<!-- normreg-cli-reference -->` gets, in
its place, one section per command of `normreg.cli.app` (in the CLI's own order): its help text, its usage, and
a table of its arguments and options with their defaults, all read from the command objects typer builds
(duck-typed: this typer carries its own copy of click). Nothing here imports mkdocs, so the tests render the
same text (tests/docs/test_docs.py).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

MARKER = "<!-- normreg-cli-reference -->"


def _cell(text: str) -> str:
    """Help text as one line of Markdown: nothing in it read as a tag, emphasis or a table's column."""
    text = " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\|*_`[":
        text = text.replace(char, "\\" + char)
    return text


def is_argument(param: Any) -> bool:
    return not any(opt.startswith("-") for opt in param.opts)


def _metavar(param: Any) -> str:
    if param.metavar:
        name = param.metavar
    elif is_argument(param):
        name = (param.name or "").upper()
    else:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", str)
        args = typing.get_args(annotation)
        inner = args[0] if args and typing.get_origin(annotation) is list else annotation
        name = {int: "N", float: "X", Path: "PATH"}.get(inner, "TEXT")
    return f"{name}..." if param.nargs == -1 else name


def _usage(path: str, command: Any) -> str:
    parts = [path, "[OPTIONS]"]
    for param in command.params:
        if is_argument(param):
            parts.append(_metavar(param) if param.required else f"[{_metavar(param)}]")
    if hasattr(command, "commands"):
        parts.append("COMMAND [ARGS]...")
    return " ".join(parts)


def _default(param: Any) -> str:
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        return "off"
    if param.default is None or param.default == () or param.default == []:
        return ""
    return f"`{param.default}`"


def _row(param: Any) -> str:
    if is_argument(param):
        name = f"`{_metavar(param)}`"
    else:
        names = sorted(param.opts, key=len, reverse=True) + list(param.secondary_opts)
        flag = getattr(param, "is_flag", False)
        name = ", ".join(f"`{n}`" if flag else f"`{n} {_metavar(param)}`" for n in names)
        if getattr(param, "multiple", False):
            name += " (repeatable)"
    return f"| {name} | {_default(param)} | {_cell(getattr(param, 'help', None) or '')} |"


def _section(path: str, command: Any, level: str) -> list[str]:
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    lines = [f"{level} `{path}`", "", _cell(command.help or ""), "", "```", _usage(path, command), "```", ""]
    if params:
        lines += ["| argument or option | default | what it does |", "| --- | --- | --- |"]
        lines += [_row(p) for p in params]
        lines.append("")
    return lines


def render(app: object | None = None) -> str:
    """The Markdown reference of every command of the CLI (normreg's own app unless one is given)."""
    import typer

    if app is None:
        from normreg.cli import app
    group = typer.main.get_command(app)
    lines = _section("normreg", group, "###")
    for name, command in group.commands.items():
        if not command.hidden:
            lines += _section(f"normreg {name}", command, "###")
    return "\n".join(lines).rstrip() + "\n"


def on_page_markdown(markdown: str, page: object, config: object, files: object, **kwargs: object) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
