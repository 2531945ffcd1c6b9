"""Pure parts of the several-seed summary: parsing --seeds, mean ± std, the table."""

from __future__ import annotations

import pytest

from bertserve.errors import ConfigError
from bertserve.training.seeds import format_summary, parse_seeds, summarize


def test_a_count_starts_at_the_seed_and_a_list_is_taken_as_given():
    assert parse_seeds("3", 42) == [42, 43, 44]
    assert parse_seeds("42,7,1", 0) == [42, 7, 1]


@pytest.mark.parametrize("spec, message", [("0", "the count must be >= 1"), ("a,b", "expected a count"),
                                           ("1,1", "seed listed twice")])
def test_bad_seed_specs_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_seeds(spec, 42)


def metrics(dev, test, free):
    return {"dev": {"accuracy": dev}, "test": {"accuracy": test, "leakage_free": {"accuracy": free}}}


def test_summary_is_the_mean_and_sample_standard_deviation():
    summary = summarize({42: metrics(0.94, 0.95, 0.93), 7: metrics(0.92, 0.93, 0.91)})
    assert summary["seeds"] == [42, 7]
    assert summary["dev_accuracy"]["mean"] == pytest.approx(0.93)
    assert summary["dev_accuracy"]["std"] == pytest.approx(0.0141421356)  # sample std of 0.94, 0.92
    assert summary["test_leakage_free_accuracy"] == {"mean": pytest.approx(0.92), "std": pytest.approx(0.0141421356), "n": 2}
    assert format_summary(summary).splitlines() == [
        "seed                       dev                test  test, leakage-free",
        "42                       94.00               95.00               93.00",
        "7                        92.00               93.00               91.00",
        "mean ± std        93.00 ± 1.41        94.00 ± 1.41        92.00 ± 1.41",
    ]


def test_one_seed_has_std_zero_and_a_missing_figure_is_left_out():
    summary = summarize({1: {"dev": {"accuracy": 0.9}, "test": {"accuracy": 0.8}}})
    assert summary["dev_accuracy"] == {"mean": 0.9, "std": 0.0, "n": 1}
    assert "test_leakage_free_accuracy" not in summary
    assert summary["runs"]["1"]["test_leakage_free_accuracy"] is None
    assert format_summary(summary).splitlines()[-1].split()[-1] == "-"


def test_a_figure_that_is_none_in_a_run_is_left_out_of_the_summary():
    runs = {1: {"dev": {"accuracy": 0.5}, "test": {"accuracy": 0.25, "leakage_free": {"examples": 0, "accuracy": None}}}}
    summary = summarize(runs)
    assert summary["runs"]["1"] == {"dev_accuracy": 0.5, "test_accuracy": 0.25, "test_leakage_free_accuracy": None}
    assert "test_leakage_free_accuracy" not in summary and summary["test_accuracy"]["mean"] == 0.25
