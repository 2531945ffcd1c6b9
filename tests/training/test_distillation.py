"""Knowledge distillation: the loss's golden values on hand-made logits, its composition with
R-Drop, and the teachers (an export version folder, a run folder) as sources of soft targets."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from bertserve.errors import ConfigError
from bertserve.training.config import build_config
from bertserve.training.distillation import check_teachers, open_teacher, teacher_probabilities
from bertserve.training.objectives import SoftTargets, classification_loss, distillation_loss

from conftest import LABELS, make_tiny_run
from test_options import FixedLogits


def softmax(values, temperature=1.0):
    exponentials = [math.exp(value / temperature) for value in values]
    return [value / sum(exponentials) for value in exponentials]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


TEACHER = [0.25, 0.75]  # the teacher's probabilities for the one example
STUDENT = [0.0, 0.0]  # the student's logits: uniform


def loss_of(student, labels, alpha, temperature, teacher=TEACHER) -> float:
    soft = SoftTargets(torch.tensor([[math.log(p) for p in teacher]]), alpha, temperature)
    return distillation_loss(torch.tensor([student]), torch.tensor(labels), soft).item()


def test_alpha_0_is_plain_cross_entropy():
    assert loss_of(STUDENT, [1], 0.0, 2.0) == pytest.approx(-math.log(0.5), rel=1e-6)
    assert loss_of([1.0, -2.0], [0], 0.0, 5.0) == pytest.approx(-math.log(softmax([1.0, -2.0])[0]), rel=1e-6)


def test_alpha_1_with_the_student_equal_to_the_teacher_is_0():
    logits = [math.log(0.25) + 3.0, math.log(0.75) + 3.0]  # logits differ from log-probabilities by a constant
    for temperature in (0.5, 1.0, 2.0, 4.0):
        assert loss_of(logits, [0], 1.0, temperature) == pytest.approx(0.0, abs=1e-6)


def test_temperature_softens_both_sides_and_scales_the_kl_by_t_squared():
    # T = 2: the teacher's (1/4, 3/4) becomes proportional to (1/2, sqrt(3)/2); the uniform student stays uniform.
    softened = [0.5 / (0.5 + math.sqrt(3) / 2), (math.sqrt(3) / 2) / (0.5 + math.sqrt(3) / 2)]
    assert softened == pytest.approx(softmax([math.log(0.25), math.log(0.75)], temperature=2.0))
    assert loss_of(STUDENT, [1], 1.0, 2.0) == pytest.approx(4.0 * kl(softened, [0.5, 0.5]), rel=1e-5)
    assert loss_of(STUDENT, [1], 1.0, 1.0) == pytest.approx(kl(TEACHER, [0.5, 0.5]), rel=1e-5)
    mixed = 0.3 * -math.log(0.5) + 0.7 * 4.0 * kl(softened, [0.5, 0.5])
    assert loss_of(STUDENT, [1], 0.7, 2.0) == pytest.approx(mixed, rel=1e-5)


def test_losses_are_summed_over_examples():
    soft = SoftTargets(torch.log(torch.tensor([TEACHER, [0.9, 0.1]])), 0.5, 2.0)
    both = distillation_loss(torch.tensor([STUDENT, [2.0, 0.0]]), torch.tensor([1, 0]), soft).item()
    assert both == pytest.approx(loss_of(STUDENT, [1], 0.5, 2.0) + loss_of([2.0, 0.0], [0], 0.5, 2.0, [0.9, 0.1]), rel=1e-6)


def test_with_rdrop_each_pass_is_distilled_and_the_kl_between_passes_added():
    first, second = [0.0, math.log(3.0)], [math.log(3.0), 0.0]
    soft = SoftTargets(torch.log(torch.tensor([TEACHER])), 0.5, 2.0)
    inputs, labels = {"input_ids": torch.zeros(1, 3, dtype=torch.long)}, torch.tensor([1])
    loss = classification_loss(FixedLogits([first, second]), inputs, labels, None, rdrop_alpha=2.0, soft=soft).item()
    passes = (loss_of(first, [1], 0.5, 2.0) + loss_of(second, [1], 0.5, 2.0)) / 2
    symmetric = kl([0.25, 0.75], [0.75, 0.25])  # KL(p||q) = KL(q||p) here
    assert loss == pytest.approx(passes + 2.0 * symmetric, rel=1e-6)


@pytest.mark.parametrize("flag, value, message", [
    ("distill_alpha", -0.1, "distill_alpha must be in [0, 1]"), ("distill_alpha", 1.5, "distill_alpha must be in [0, 1]"),
    ("distill_temperature", 0.0, "distill_temperature must be > 0"),
    ("distill_temperature", -1.0, "distill_temperature must be > 0")])
def test_bad_distillation_values_are_config_errors(flag, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(flags={flag: value}, environ={})


def test_teachers_come_from_flags_files_and_the_environment(tmp_path):
    assert build_config(flags={"teachers": ["a", "b"]}, environ={}).teachers == ("a", "b")
    assert build_config(environ={"BERTSERVE_TEACHERS": "a,b"}).teachers == ("a", "b")
    file = tmp_path / "config.json"
    file.write_text('{"teachers": ["x"], "teacher_fingerprints": ["sha256:00"]}')
    config = build_config(file, environ={})
    assert (config.teachers, config.teacher_fingerprints, config.distill_alpha, config.distill_temperature) == (
        ("x",), ("sha256:00",), 0.5, 2.0)


def test_an_export_and_a_run_are_teachers_with_their_fingerprints(tiny_export, tiny_run):
    from bertserve.files import sha256_of

    export, run = open_teacher(str(tiny_export)), open_teacher(str(tiny_run))
    assert (export.kind, export.labels, export.fingerprint) == ("export", LABELS, "sha256:" + sha256_of(tiny_export / "manifest.json"))
    assert (run.kind, run.labels) == ("run", LABELS)
    assert run.fingerprint == "sha256:" + sha256_of(tiny_run / "model" / "model.safetensors")
    check_teachers([export, run], LABELS)


def test_teacher_probabilities_are_the_models_own(tiny_export, tiny_run):
    from bertserve.inference.model import ExportedModel
    from bertserve.training.run_folder import load_run

    texts = ["很好", "太差了，再也不来", "很好"]
    config = build_config(flags={"eval_batch_size": 2}, environ={})
    device = torch.device("cpu")
    from_export = teacher_probabilities(open_teacher(str(tiny_export)), texts, config, device, None)
    np.testing.assert_allclose(from_export, ExportedModel.load(tiny_export).predict_texts(texts), atol=1e-6)
    run = load_run(tiny_run)
    with torch.no_grad():
        expected = torch.softmax(run.model(**{name: torch.from_numpy(array) for name, array in
                                              run.tokenizer.encode(texts).as_dict().items()}).logits, dim=-1).numpy()
    from_run = teacher_probabilities(open_teacher(str(tiny_run)), texts, config, device, None)
    np.testing.assert_allclose(from_run, expected, atol=1e-5)
    assert from_run.shape == (3, 2) and np.array_equal(from_run[0], from_run[2])


def test_a_teacher_with_other_labels_or_given_twice_is_refused(tmp_path, tiny_run):
    other = open_teacher(str(make_tiny_run(tmp_path / "other", labels=["bad", "good"])))
    with pytest.raises(ConfigError) as error:
        check_teachers([other], LABELS)
    assert str(error.value) == (f"--teacher {tmp_path / 'other'} has labels ['bad', 'good'] but the training data has "
                                "['negative', 'positive']; a teacher must have the same labels in the same order")
    with pytest.raises(ConfigError, match="given twice"):
        check_teachers([open_teacher(str(tiny_run)), open_teacher(str(tiny_run))], LABELS)


def test_a_teacher_path_must_be_a_version_or_run_folder(tmp_path, tiny_export):
    with pytest.raises(ConfigError) as error:
        open_teacher(str(tmp_path / "missing"))
    assert str(error.value) == (f"--teacher {tmp_path / 'missing'} does not exist (give an export version folder or a "
                                "run folder)")
    with pytest.raises(ConfigError) as error:
        open_teacher(str(tmp_path))
    assert str(error.value) == (f"--teacher {tmp_path} is neither an export version folder (no manifest.json) nor a run "
                                "folder (no model/model.safetensors)")
    with pytest.raises(ConfigError, match=re.escape(f"it holds export versions, give one of them, e.g. {tiny_export}")):
        open_teacher(str(tiny_export.parent))


def test_set_up_records_fingerprints_and_resume_refuses_a_changed_teacher(tmp_path, small_data, tiny_run):
    import shutil

    from bertserve.training.distillation import set_up_distillation
    from bertserve.training.run_folder import load_run
    from bertserve.training.training_data import load_training_data

    teacher = shutil.copytree(tiny_run, tmp_path / "teacher")
    config = build_config(flags={"data": str(small_data), "teachers": [str(teacher)], "precision": "fp32"}, environ={})
    data = load_training_data(config, load_run(teacher).tokenizer)
    device = torch.device("cpu")
    assert set_up_distillation(build_config(flags={"data": str(small_data)}, environ={}), data, device, None, False)[1] is None
    recorded, distillation = set_up_distillation(config, data, device, None, resume=False)
    assert recorded.teacher_fingerprints == (open_teacher(str(teacher)).fingerprint,)
    assert distillation.log_probabilities.shape == (len(data.train_ids), 2)
    np.testing.assert_allclose(distillation.log_probabilities.exp().numpy(),
                               teacher_probabilities(open_teacher(str(teacher)), data.train_texts, config, device, None))
    targets = distillation.targets_for([3, 0], device)
    assert torch.equal(targets.log_probabilities, distillation.log_probabilities[[3, 0]])
    assert (targets.alpha, targets.temperature) == (0.5, 2.0)
    assert set_up_distillation(recorded, data, device, None, resume=True)[0] == recorded  # unchanged: resumes

    make_tiny_run(teacher, seed=1)  # other weights in the same folder
    with pytest.raises(ConfigError) as error:
        set_up_distillation(recorded, data, device, None, resume=True)
    assert str(error.value) == (f"--resume: teacher {teacher} changed since this run started (its fingerprint differs "
                                "from config.json); the soft targets would not be the same")


def test_an_interrupted_distilled_run_resumes_with_the_same_soft_targets(tmp_path, monkeypatch, small_data, tiny_pretrained,
                                                                          tiny_export):
    from bertserve.training import distillation, loop, plots

    monkeypatch.setattr(plots, "write_plots", lambda output: None)  # seconds of matplotlib this test does not need
    flags = dict(data=str(small_data), pretrained=str(tiny_pretrained), epochs=2, batch_size=8, learning_rate=5e-3,
                 max_seq_length=16, precision="fp32", seed=3, teachers=[str(tiny_export)], distill_alpha=0.8,
                 max_train_examples=16, max_eval_examples=8)
    reference = loop.train(build_config(flags={**flags, "output": str(tmp_path / "reference")}, environ={}))

    output = tmp_path / "interrupted"
    real_end_epoch = loop.end_epoch

    def end_epoch_then_crash_in_epoch_2(output_folder, model, tokenizer, data, progress, *rest):
        if progress.epoch == 2:
            raise KeyboardInterrupt  # after epoch 1's checkpoint, before epoch 2 is scored
        return real_end_epoch(output_folder, model, tokenizer, data, progress, *rest)

    monkeypatch.setattr(loop, "end_epoch", end_epoch_then_crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        loop.train(build_config(flags={**flags, "output": str(output)}, environ={}))
    monkeypatch.setattr(loop, "end_epoch", real_end_epoch)
    monkeypatch.setattr(distillation, "_REMEMBERED", {})  # a new process: the teacher reads the texts again
    recorded = build_config(output / "config.json", {"output": str(output)}, environ={})
    resumed = loop.train(recorded, resume=True)

    assert recorded.teacher_fingerprints == (open_teacher(str(tiny_export)).fingerprint,)
    assert resumed["teacher_dev_accuracy"] == reference["teacher_dev_accuracy"]
    history = [json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "reference" / "history.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2]
    for got, want in zip(history, expected):
        assert got["loss_curve"] == pytest.approx(want["loss_curve"], abs=1e-5)
