import json

import pytest

from bertserve.training.config import TrainConfig, build_config
from bertserve.errors import ConfigError


def test_defaults_are_the_demos_hyper_parameters():
    config = build_config(environ={})
    assert (config.learning_rate, config.batch_size, config.warmup_ratio, config.max_seq_length, config.epochs) == (5e-5, 32, 0.1, 128, 3)


def test_precedence_defaults_file_environment_flags(tmp_path):
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"epochs": 5, "batch_size": 16, "learning_rate": 1e-4}))
    config = build_config(file, flags={"epochs": 7, "batch_size": None}, environ={"BERTSERVE_BATCH_SIZE": "8", "BERTSERVE_EPOCHS": "6"})
    assert (config.epochs, config.batch_size, config.learning_rate) == (7, 8, 1e-4)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"epoch": 3}, r"unknown keys \['epoch'\]"),
        ({"epochs": "three"}, r"'epochs': expected int"),
        ({"epochs": 2.5}, r"'epochs': expected int"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"device": "tpu"}, "device must be"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_bad_config_files(tmp_path, content, message):
    file = tmp_path / "c.json"
    file.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        build_config(file, environ={})


def test_config_is_frozen_and_serialisable():
    config = TrainConfig()
    with pytest.raises(Exception):
        config.epochs = 4  # type: ignore[misc]
    assert json.loads(json.dumps(config.to_dict()))["pretrained"] == "m3e-small"
