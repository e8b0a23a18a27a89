"""normreg/choices.py: each closed set of choices is defined once and checked one way everywhere."""

from __future__ import annotations

import pytest

from normreg import choices
from normreg.errors import InputError
from normreg.judge import designs, sequential, stats
from normreg.suite import building


def test_check_choice_names_the_option_and_suggests():
    assert choices.check_choice("--design", "paired", choices.DESIGNS) == "paired"
    with pytest.raises(InputError, match=r"^--design: expected one of welch, paired, permutation, but found a string "
                                         r"\('pared'\)\. "
                                         r"Did you mean 'paired'\?$"):
        choices.check_choice("--design", "pared", choices.DESIGNS)


@pytest.mark.parametrize("call, match", [
    (lambda: __import__("normreg.comparison").comparison.compare("a.csv", "b.csv", correction="holmes"),
     "--correction: expected one of holm, bonferroni, none.*Did you mean 'holm'"),
    (lambda: __import__("normreg.comparison").comparison.compare("a.csv", "b.csv", goal="maximum"),
     "--goal: expected one of max, min"),
    (lambda: stats.adjust([], "bonferoni"), "correction: .*Did you mean 'bonferroni'"),
], ids=["compare-correction", "compare-goal", "adjust"])
def test_every_entry_point_checks_the_same_way(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_one_definition_of_each_choice():
    assert choices.DESIGNS == ("welch", *(n for n in designs.names() if n != "welch"))  # the registry, unimported
    assert building.EXPECTATIONS is choices.EXPECTATIONS and sequential.SPENDING is choices.SPENDING
