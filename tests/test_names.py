"""normreg/names.py: the one rule for the names a user gives (suites, variants, metrics), each refusal one line that
says what is wrong and what to do."""

from __future__ import annotations

import pytest

from normreg.names import MAX_NAME_BYTES, name_problem


@pytest.mark.parametrize("name", ["merged", "twin tower", "acc@1", "val/acc", "modèle-β_2", "x" * MAX_NAME_BYTES])
def test_names_a_user_writes_are_accepted_where_they_can_go(name):
    role = "metric" if "/" in name or "@" in name else "suite"
    assert name_problem(name, role) is None


@pytest.mark.parametrize("name,role,found", [
    ("", "variant", "a name must be a non-empty string, found a string ('')"),
    (None, "suite", "a name must be a non-empty string, found nothing (null)"),
    (3, "metric", "a name must be a non-empty string, found a number (3)"),
    ("a\nb", "variant", "'\\n' at position 1 is not: remove it"),
    ("tw\u202ein", "variant", "'\\u202e' at position 2 is not: remove it"),
    ("\ud800", "metric", "'\\ud800' at position 0 is not: remove it"),
    ("é" * 65, "metric", f"a name is at most {MAX_NAME_BYTES} bytes (UTF-8), as it becomes part of file names; "
                         "this one is 130: shorten it"),
    ("a/b", "variant", "a variant name cannot hold '/': it becomes part of file names"),
    ("night@cpu#1", "suite", "a suite name cannot hold '#', '@': it becomes part of file names"),
    ("a\\b", "suite", "a suite name cannot hold '\\\\': it becomes part of file names"),
    (".hidden", "variant", "a variant name cannot start with '.': it would name a hidden file"),
    ("Report.JSON", "suite", "'Report.JSON' is a file of the run directory; name the suite otherwise"),
])
def test_each_name_that_cannot_go_everywhere_is_refused_saying_why(name, role, found):
    problem = name_problem(name, role)
    assert problem is not None and found in problem


def test_only_names_that_become_file_names_are_held_to_the_file_name_rules():
    assert name_problem(".hidden", "metric") is None and name_problem("report.json", "variant") is None
    assert name_problem("a@b", "variant") is None and name_problem("a@b", "suite") is not None
