"""Reading a suite file: bounded YAML (size, depth, node count, aliases, duplicate keys) into a `Document` that
keeps the line of every key path, so every error can name the file, the line and the key.

Nothing here knows the suite's keys: `suite.building` checks those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from normreg.errors import ResultsError, SuiteError, printable
from normreg.fileio import MAX_INT_DIGITS, MAX_JSON_DEPTH, has_surrogate, read_text_bounded
from normreg.suite.model import Suite

# Bounds on what a suite file may make normreg do while loading it. A real suite is a few kilobytes with a
# few hundred nodes; these are far above that and far below what costs noticeable time or memory.
MAX_SUITE_BYTES = 64 * 1024  # PyYAML reads about 100 kB a second
MAX_NODES = 100_000  # YAML nodes after expanding aliases (an alias bomb expands to billions)
MAX_DEPTH = MAX_JSON_DEPTH  # nesting of mappings and lists: the limit of normreg's JSON files too


class Document:
    """Parsed YAML plus the line of every key path, so errors can point at the text."""

    def __init__(self, path: Path, data: Any, lines: dict[tuple[str, ...], int],
                 overridden: set[tuple[str, ...]]) -> None:
        self.path = path
        self.data = data
        self.lines = lines
        self.overridden = overridden

    def error(self, keys: Sequence[str], message: str) -> SuiteError:
        keys = tuple(keys)
        if any(keys[: i + 1] in self.overridden for i in range(len(keys))):
            return SuiteError(f"{message} (set on the command line with --set)", path=str(self.path),
                              key=".".join(keys))
        probe = keys
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return SuiteError(message, path=str(self.path), line=self.lines.get(probe, 1),
                          key=".".join(keys) or None)


def _index_lines(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = str(k.value)
            out[prefix + (key,)] = k.start_mark.line + 1
            _index_lines(v, prefix + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _index_lines(v, prefix + (str(i),), out)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on nesting depth, checked as nodes are composed (before recursion)."""

    def __init__(self, stream: str, source: str | None = None) -> None:
        super().__init__(stream)
        self._depth = 0
        self._source = source  # the file, for errors raised while constructing values

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner looks ahead through every open bracket (each may start a key): stop deep brackets here,
        # before that look-ahead costs time.
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"brackets nested more than {MAX_DEPTH} levels deep (the "
                                            "limit for a suite file)", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep (the limit for a suite file)", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise SuiteError(f"an integer of {digits} digits, over the limit of {MAX_INT_DIGITS}",
                             path=self._source, line=node.start_mark.line + 1)
        return super().construct_yaml_int(node)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        value = super().construct_yaml_str(node)
        if has_surrogate(value):
            raise SuiteError(f"a string holding a lone surrogate ({printable(value)[:60]}); write it as valid "
                             "Unicode text", path=self._source, line=node.start_mark.line + 1)
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:str", _BoundedLoader.construct_yaml_str)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_nodes(path: Path, root: yaml.Node) -> None:
    """Refuse recursive aliases, alias expansions beyond `MAX_NODES`, and duplicate keys (naming both lines).

    Sizes are memoised per node, so an alias bomb is measured without being expanded.
    """
    size: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            on_stack.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            if size[id(node)] > MAX_NODES:
                raise SuiteError(f"the YAML expands to more than {MAX_NODES} nodes (aliases included), the "
                                 "limit for a suite file", path=str(path), line=node.start_mark.line + 1)
            continue
        if id(node) in size:
            continue
        on_stack.add(id(node))
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(path, node)
        for child in _children(node):
            if id(child) in on_stack:
                raise SuiteError("a recursive alias (a node that contains itself); write the value out",
                                 path=str(path), line=child.start_mark.line + 1)
            if id(child) not in size:
                stack.append((child, False))


def _check_duplicates(path: Path, node: yaml.MappingNode) -> None:
    """YAML says keys are unique; PyYAML keeps the last silently. Refuse, naming both lines."""
    seen: dict[str, int] = {}
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
            continue
        line = k.start_mark.line + 1
        if k.value in seen:
            raise SuiteError(f"duplicate key '{k.value}' (first on line {seen[k.value]}, again on line {line}); "
                             "YAML keeps only the last: keep one", path=str(path), line=line)
        seen[k.value] = line


def load_bounded(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    """Compose and check the node graph (depth, size, cycles, duplicate keys), then construct Python values."""
    loader = _BoundedLoader(text, str(path))
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_nodes(path, node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def parse_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    try:
        text = read_text_bounded(path, MAX_SUITE_BYTES, "a suite file (.yaml)")
    except ResultsError as e:
        if e.missing:
            raise SuiteError("no such suite file; give the path of a .yaml suite or of a folder of them",
                             path=str(path)) from None
        raise SuiteError(e.reason, path=str(path), line=e.line) from None
    try:
        node, data = load_bounded(text, path)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteError(f"invalid YAML: {e.problem or e}", path=str(path), line=line) from None
    except yaml.YAMLError as e:
        raise SuiteError(f"invalid YAML: {e}", path=str(path)) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def suite_error(suite: Suite, keys: Sequence[Sequence[str]], message: str) -> SuiteError:
    """An error about a validated suite that names the line of the first of `keys` found in its file."""
    try:
        _, lines = parse_yaml(suite.path)
    except SuiteError:
        lines = {}
    for k in keys:
        if tuple(k) in lines:
            return SuiteError(message, path=str(suite.path), line=lines[tuple(k)], key=".".join(k))
    return SuiteError(f"{message} (set on the command line with --set)", path=str(suite.path),
                      key=".".join(keys[0]) if keys else None)


def read_document(path: Path) -> Document:
    """The suite file at `path`, parsed and bounded, with the line of every key path; an empty file reads as `{}`."""
    data, lines = parse_yaml(path)
    return Document(path, {} if data is None else data, lines, set())
