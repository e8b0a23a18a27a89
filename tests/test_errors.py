"""normreg/errors.py: the exception tree the CLI maps to exit codes, and the one-line messages its errors make."""

from __future__ import annotations

from pathlib import Path

import pytest

from normreg.errors import (
    InputError,
    NormregError,
    ResultsError,
    RunError,
    SuiteError,
    did_you_mean,
    file_problem,
    printable,
)


def test_bad_input_and_failed_training_are_separate_branches_of_one_tree():
    assert issubclass(SuiteError, InputError) and issubclass(ResultsError, InputError)
    assert issubclass(InputError, NormregError) and issubclass(RunError, NormregError)
    assert not issubclass(RunError, InputError)


@pytest.mark.parametrize("where,message", [
    ({}, "bad"), ({"path": "s.yaml"}, "s.yaml: bad"), ({"path": "s.yaml", "line": 3}, "s.yaml:3: bad"),
    ({"path": "s.yaml", "line": 3, "key": "variants.a"}, "s.yaml:3: variants.a: bad"), ({"key": "seeds"}, "seeds: bad"),
    ({"path": "s.yaml", "key": "variants.a\nb"}, "s.yaml: variants.a\\nb: bad"),
], ids=["bare", "file", "line", "key", "key-only", "key-escaped"])
def test_a_suite_error_names_the_file_line_and_key(where, message):
    e = SuiteError("bad", **where)
    assert str(e) == message and e.detail == "bad"
    assert (e.path, e.line, e.key) == (where.get("path"), where.get("line"), where.get("key"))


def test_a_file_problem_reads_file_line_reason_and_keeps_its_parts():
    e = file_problem(Path("r.json"), "not JSON", line=4)
    assert str(e) == "r.json:4: not JSON" and (e.path, e.reason, e.line, e.missing) == ("r.json", "not JSON", 4, False)
    gone = file_problem("gone.json", "no such file", missing=True)
    assert str(gone) == "gone.json: no such file" and gone.missing and gone.line is None


def test_printable_writes_control_and_format_characters_as_escapes_and_keeps_spaces():
    assert printable("a b\tc\x1b[31m\u202e") == "a b\\tc\\x1b[31m\\u202e"


def test_did_you_mean_offers_the_closest_option_or_nothing():
    assert did_you_mean("permutaton", ["welch", "paired", "permutation"]) == " Did you mean 'permutation'?"
    assert did_you_mean("seds", ["seeds"], prefix="--") == " Did you mean '--seeds'?"
    assert did_you_mean("xyz", ["welch"]) == ""
