"""The several-seed summary: parsing --seeds, mean ± std, the table, and when a finished seed folder
is reused instead of trained again (train() itself is replaced by a stand-in)."""

from __future__ import annotations

import pytest

from bertserve.errors import ConfigError
from bertserve.files import write_json_atomic
from bertserve.training.config import TrainConfig
from bertserve.training.seeds import format_summary, parse_seeds, seed_run_folder, summarize, train_seeds


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


# ---- reusing a finished seed folder ----------------------------------------------------------------


def finished_seed(sweep, seed: int, **settings) -> None:
    """A seed folder as train() leaves it: config.json (that seed's config) and metrics.json."""
    folder = seed_run_folder(sweep, seed)
    folder.mkdir(parents=True)
    config = TrainConfig(**{"data": "../data/reviews", "output": str(folder), "seed": seed, **settings})
    write_json_atomic(folder / "config.json", config.to_dict())
    write_json_atomic(folder / "metrics.json", metrics(0.9, 0.8, 0.7))


def refuse_to_train(config):
    raise AssertionError(f"seed {config.seed} was trained again instead of reused")


def test_a_finished_seed_of_the_same_setting_is_reused_whatever_ran_it(tmp_path):
    sweep = tmp_path / "sweep"
    finished_seed(sweep, 42, fgm_epsilon=1.0, threads=1, device="cpu", eval_batch_size=8)
    config = TrainConfig(data="../data/reviews/", output=str(sweep), fgm_epsilon=1.0)  # same folder, trailing slash
    summary = train_seeds(config, [42], refuse_to_train)
    assert summary["runs"]["42"]["dev_accuracy"] == 0.9
    assert (sweep / "seeds_summary.json").is_file()


def test_a_finished_seed_of_another_setting_is_refused_by_name(tmp_path):
    sweep = tmp_path / "sweep"
    finished_seed(sweep, 42, fgm_epsilon=1.0)
    config = TrainConfig(data="../data/reviews", output=str(sweep), learning_rate=1e-4)
    with pytest.raises(ConfigError) as refused:
        train_seeds(config, [42], refuse_to_train)
    message = str(refused.value)
    assert "seed-42 holds a finished run of another setting" in message
    assert "learning_rate 5e-05 there, 0.0001 here" in message and "fgm_epsilon 1.0 there, 0.0 here" in message
    assert not (sweep / "seeds_summary.json").exists()


def test_a_seed_folder_without_metrics_is_trained_and_one_with_an_unreadable_config_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    seed_run_folder(sweep, 7).mkdir(parents=True)  # an interrupted seed: no metrics.json
    trained = []
    summary = train_seeds(TrainConfig(output=str(sweep)), [7],
                          lambda config: trained.append(config.output) or metrics(0.5, 0.5, 0.5))
    assert trained == [str(seed_run_folder(sweep, 7))] and summary["seeds"] == [7]
    finished_seed(sweep, 8)
    (seed_run_folder(sweep, 8) / "config.json").write_text('{"epochs": 0}', encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be compared: epochs must be >= 1"):
        train_seeds(TrainConfig(output=str(sweep)), [8], refuse_to_train)
