"""Engine tuning at load: candidates per CPU, the parity bound, the time budget, the cache, pins."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertserve.errors import ConfigError
from bertserve.inference import tuning
from bertserve.inference.tuning import Candidate, TuningOptions, candidates, load_tuned_engine, measure


def test_candidates_follow_the_cpu_and_the_pins():
    plain = TuningOptions()
    assert candidates("openvino", plain, cores=2, bf16=False) == [Candidate("fp32", "LATENCY", 2, None)]
    assert candidates("openvino", plain, cores=2, bf16=True) == [
        Candidate("fp32", "LATENCY", 2, None), Candidate("bf16", "LATENCY", 2, None)]
    assert candidates("openvino", plain, cores=8, bf16=False) == [
        Candidate("fp32", "LATENCY", 8, None), Candidate("fp32", "LATENCY", 4, None)]
    # Several batches at once: THROUGHPUT with one stream per batch thread is worth a try.
    assert candidates("openvino", TuningOptions(batch_threads=2), cores=2, bf16=False) == [
        Candidate("fp32", "LATENCY", 2, None), Candidate("fp32", "THROUGHPUT", 2, 2)]
    pinned = TuningOptions(precision="bf16", threads=1)
    assert candidates("openvino", pinned, cores=8, bf16=True) == [Candidate("bf16", "LATENCY", 1, None)]
    assert candidates("onnxruntime", plain, cores=4, bf16=True) == [Candidate(None, "LATENCY", 4), Candidate(None, "LATENCY", 2)]
    # An export with an fp32 twin: the twin first (the most precise), then the main (int8) model.
    assert candidates("openvino", plain, cores=2, bf16=True, variants=["fp32"]) == [
        Candidate("fp32", "LATENCY", 2, None, "fp32"), Candidate("bf16", "LATENCY", 2, None, "fp32"),
        Candidate("fp32", "LATENCY", 2, None), Candidate("bf16", "LATENCY", 2, None)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "fp16"}, r"--inference_precision must be one of \['fp32', 'bf16', 'default'\]"),
        ({"performance_hint": "FAST"}, r"--performance_hint must be one of \['LATENCY', 'THROUGHPUT'\]"),
        ({"budget_seconds": -1}, "--engine_tuning_seconds must be >= 0"),
        ({"threads": 0}, "engine threads must be at least 1"),
    ],
)
def test_bad_tuning_options(options, message):
    with pytest.raises(ConfigError, match=message):
        TuningOptions(**options)


class FakeEngine:
    """Logits shifted by `offset`; `calls` counts runs. Speed is not faked: the choice between
    engines of equal speed is not asserted, only which ones are eligible."""

    input_names = ("input_ids",)

    def __init__(self, offset: float):
        self.offset = offset
        self.calls = 0

    def run(self, inputs):
        self.calls += 1
        ids = inputs["input_ids"].astype(np.float32)
        return np.stack([ids.mean(axis=1) / 1000, np.full(len(ids), 0.5, dtype=np.float32) + self.offset], axis=1)


def test_measure_keeps_only_candidates_within_the_parity_bound():
    inputs = [{"input_ids": np.array([[101, 2523, 102]])}, {"input_ids": np.array([[101, 102, 0], [101, 3, 102]])}]
    offsets = {"fp32": 0.0, "bf16": 5.0}  # bf16 here flips every argmax
    built = {}

    def build(candidate):
        built[candidate.precision] = FakeEngine(offsets[candidate.precision])
        return built[candidate.precision]

    found = [Candidate("fp32", "LATENCY", 2), Candidate("bf16", "LATENCY", 2)]
    # A fake engine is fast: the rounds stop at their cap (MAX_ROUNDS) long before a 10 s budget.
    engine, chosen, trials = measure(build, found, inputs, bound=0.05, budget_seconds=10.0)
    assert chosen == found[0] and engine is built["fp32"]
    assert [trial.same_argmax for trial in trials] == [True, False]
    assert trials[0].max_abs_diff == 0.0 and trials[1].max_abs_diff > 0.05
    assert trials[1].note == "outside the parity bound 0.05"
    assert all(trial.milliseconds is not None for trial in trials)
    # One reference pass, then the capped rounds.
    assert built["fp32"].calls == built["bf16"].calls == (1 + tuning.MAX_ROUNDS) * len(inputs)


def test_measure_with_no_budget_left_keeps_the_first_candidate_and_measures_it_twice():
    engines = []
    found = [Candidate("fp32"), Candidate("bf16")]
    engine, chosen, trials = measure(lambda candidate: engines.append(FakeEngine(0.0)) or engines[-1], found,
                                     [{"input_ids": np.array([[101, 102]])}], bound=0.05, budget_seconds=0.0)
    assert chosen == found[0] and engines == [engine] and engine.calls == 3
    assert trials[1].note == "skipped: tuning budget spent" and trials[1].milliseconds is None


def test_measure_skips_candidates_that_fail_to_load():
    def build(candidate):
        if candidate.precision == "bf16":
            raise RuntimeError("bf16 is not supported on this CPU\nmore lines")
        return FakeEngine(0.0)

    found = [Candidate("fp32"), Candidate("bf16")]
    _, chosen, trials = measure(build, found, [{"input_ids": np.array([[101, 102]])}], bound=0.05, budget_seconds=10.0)
    assert chosen == found[0]
    assert trials[1].note == "failed to load: bf16 is not supported on this CPU" and trials[1].milliseconds is None


@pytest.fixture
def two_candidates(monkeypatch):
    """Pretend the CPU has bf16, so OpenVINO gets two candidates (fp32 first, bf16)."""
    monkeypatch.setattr(tuning, "bf16_supported", lambda cpu=None: True)


def test_tuning_measures_once_then_reads_the_cache(tiny_export, chinese_tokenizer, tmp_path, two_candidates):
    options = TuningOptions(cache_dir=tmp_path / "cache", budget_seconds=0.2, threads=1)
    first = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={}, options=options)
    assert first.tuning["source"] == "tuned"
    assert [trial["precision"] for trial in first.tuning["trials"]] == ["fp32", "bf16"]
    assert first.settings["engine"] == "openvino" and first.settings["threads"] == 1
    (entry,) = list((tmp_path / "cache").iterdir())
    assert entry.name == first.tuning["cache_key"] + ".json"
    cached = json.loads(entry.read_text())
    assert cached["chosen"]["precision"] in ("fp32", "bf16") and cached["settings"] == first.settings

    second = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={}, options=options)
    assert second.tuning["source"] == "cached" and second.tuning["cache_key"] == first.tuning["cache_key"]
    assert second.settings == first.settings
    # Another pin is another key: tuned again, not read from the first entry.
    other = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={},
                              options=TuningOptions(cache_dir=tmp_path / "cache", budget_seconds=0.2, threads=2))
    assert other.tuning["source"] == "tuned" and len(list((tmp_path / "cache").iterdir())) == 2


def test_an_unreadable_cache_entry_is_ignored(tiny_export, chinese_tokenizer, tmp_path, two_candidates, caplog):
    options = TuningOptions(cache_dir=tmp_path, budget_seconds=0.1, threads=1)
    first = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={}, options=options)
    (tmp_path / f"{first.tuning['cache_key']}.json").write_text("{not json", encoding="utf-8")
    again = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={}, options=options)
    assert again.tuning["source"] == "tuned"
    assert "ignoring unreadable engine tuning cache" in caplog.text


def test_one_candidate_is_not_measured(tiny_export, chinese_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "bf16_supported", lambda cpu=None: False)
    engine = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={},
                               options=TuningOptions(cache_dir=tmp_path, threads=1))
    assert engine.tuning["source"] == "only-candidate"
    assert engine.settings == {"engine": "openvino", "precision": "fp32", "hint": "LATENCY", "threads": 1, "streams": 1}
    assert not any(tmp_path.iterdir())


def test_tuning_off_uses_the_pins_or_the_export(tiny_export, chinese_tokenizer, tmp_path):
    off = TuningOptions(enabled=False, cache_dir=tmp_path, threads=1)
    engine = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={}, options=off)
    assert engine.tuning == {"source": "pinned", "seconds": engine.tuning["seconds"], "trials": []}
    assert engine.settings["precision"] == "fp32"  # what the export recorded
    runtime = load_tuned_engine(tiny_export, tokenizer=chinese_tokenizer, export_config={}, options=off)
    assert runtime.settings == {"engine": "onnxruntime", "precision": "graph", "hint": "LATENCY", "threads": 1, "streams": 1}
    assert not any(tmp_path.iterdir())


def test_the_cache_key_changes_with_the_export(tiny_export, tmp_path):
    import shutil

    cpu = {"model": "test cpu", "flags": ["avx2"], "cores": 2}
    copy = tmp_path / "1"
    shutil.copytree(tiny_export, copy)
    key = tuning.cache_key(copy, "openvino", TuningOptions(), cpu)
    assert key == tuning.cache_key(copy, "openvino", TuningOptions(), cpu)
    assert key != tuning.cache_key(copy, "openvino", TuningOptions(), {**cpu, "flags": ["amx_bf16", "avx2"]})
    assert key != tuning.cache_key(copy, "openvino", TuningOptions(precision="bf16"), cpu)
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text().replace("{", "{ ", 1))
    assert key != tuning.cache_key(copy, "openvino", TuningOptions(), cpu)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTSERVE_CACHE_DIR", str(tmp_path / "mine"))
    assert tuning.default_cache_dir() == tmp_path / "mine" / "engine-tuning"
    monkeypatch.delenv("BERTSERVE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tuning.default_cache_dir() == tmp_path / "xdg" / "bertserve" / "engine-tuning"


def test_cpu_description_names_only_the_flags_that_matter():
    cpu = tuning.cpu_description()
    assert set(cpu) == {"model", "flags", "cores"} and cpu["cores"] >= 1
    assert set(cpu["flags"]) <= set(tuning.RELEVANT_CPU_FLAGS)


def test_when_no_candidate_loads_the_error_says_why():
    from bertserve.errors import ExportError

    def build(candidate):
        raise RuntimeError(f"{candidate.precision} refused")

    with pytest.raises(ExportError, match="no engine configuration could be loaded: failed to load: fp32 refused; "
                                          "failed to load: bf16 refused"):
        measure(build, [Candidate("fp32"), Candidate("bf16")], [{"input_ids": np.array([[101, 102]])}], 0.05, 10.0)


def test_serve_flags_become_tuning_and_batching_options(tmp_path):
    import argparse

    from bertserve.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    defaults = parser.parse_args(["--model_name", "m", "--model_base_path", str(tmp_path)])
    assert serve.tuning_options(defaults) == TuningOptions()
    batching = serve.batching_options(defaults)
    assert (batching.max_batch_tokens, batching.inline_when_idle) == (0, True)
    pinned = parser.parse_args(["--engine_tuning", "off", "--inference_precision", "bf16", "--performance_hint", "THROUGHPUT",
                                "--intra_op_threads", "3", "--num_batch_threads", "2", "--engine_tuning_cache", str(tmp_path),
                                "--engine_tuning_seconds", "0.5", "--max_batch_tokens", "2048", "--inline_engine_calls", "never"])
    assert serve.tuning_options(pinned) == TuningOptions(
        enabled=False, budget_seconds=0.5, cache_dir=tmp_path, precision="bf16", performance_hint="THROUGHPUT", threads=3,
        batch_threads=2)
    batching = serve.batching_options(pinned)
    assert (batching.max_batch_tokens, batching.inline_when_idle) == (2048, False)
    with pytest.raises(ConfigError, match="--engine_tuning_seconds must be >= 0"):
        serve.tuning_options(parser.parse_args(["--engine_tuning_seconds", "-1"]))


def test_a_choice_cut_short_by_the_budget_is_not_cached(tiny_export, chinese_tokenizer, tmp_path, two_candidates, caplog):
    options = TuningOptions(cache_dir=tmp_path, budget_seconds=0.0, threads=1)
    engine = load_tuned_engine(tiny_export, "openvino", tokenizer=chinese_tokenizer, export_config={}, options=options)
    assert engine.tuning["source"] == "tuned" and engine.settings["precision"] == "fp32"
    assert [trial.get("note", "") for trial in engine.tuning["trials"]] == ["", "skipped: tuning budget spent"]
    assert not any(tmp_path.iterdir())
    assert "raise --engine_tuning_seconds to try them all" in caplog.text
