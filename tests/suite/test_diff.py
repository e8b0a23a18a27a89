"""normreg/suite/diff.py: the key paths where two versions of a suite differ, as the `--resume` and baseline
messages name them."""

from __future__ import annotations

from normreg.suite.diff import SHOWN, content_changes, summarise


def test_a_nested_change_is_named_by_its_key_path_with_both_values():
    old = {"seeds": 5, "metrics": {"acc": {"goal": "max", "min_effect": 0.01}}, "variants": {"a": {"model": "m:A"}}}
    new = {"seeds": 5, "metrics": {"acc": {"goal": "max", "min_effect": 0.02}},
           "variants": {"a": {"model": "m:A"}, "b": {"model": "m:B"}}}
    assert content_changes(old, new) == ["metrics.acc.min_effect: 0.01 -> 0.02",
                                         'variants.b: (none) -> {"model": "m:B"}']


def test_a_removed_key_and_a_value_of_another_type_are_changes():
    assert content_changes({"a": [1, 2], "b": 1}, {"a": {"x": 1}}) == ['a: [1, 2] -> {"x": 1}', "b: 1 -> (none)"]


def test_equal_suites_have_no_changes_and_keys_of_any_type_sort_by_their_text():
    assert content_changes({"a": {"b": [1, {"c": None}]}}, {"a": {"b": [1, {"c": None}]}}) == []
    assert content_changes({2: "x", "1": 0, "b": 1}, {2: "y", "1": 1, "b": 1}) == ["1: 0 -> 1", '2: "x" -> "y"']


def test_a_summary_names_the_first_few_changes_and_counts_the_rest():
    changes = [f"k{i}: 0 -> 1" for i in range(SHOWN + 3)]
    assert summarise(changes) == "; ".join(changes[:SHOWN]) + "; and 3 more"
    assert summarise(tuple(changes[:SHOWN])) == "; ".join(changes[:SHOWN])
    assert summarise([]) == ""
