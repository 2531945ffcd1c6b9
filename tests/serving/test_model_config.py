"""`--model_config_file`: TF Serving's protobuf text format (the used subset) and JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertserve.errors import ConfigError
from bertserve.serving.model_config import ModelConfig, load_model_config_file


def write(tmp_path: Path, text: str, name: str = "models.config") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_tf_serving_text_format(tmp_path):
    path = write(
        tmp_path,
        """
        # two models, as TF Serving would read them
        model_config_list {
          config {
            name: 'chnsenticorp'
            base_path: '/models/chnsenticorp'
            model_platform: 'tensorflow'
            model_version_policy { latest { num_versions: 2 } }
          }
          config: {
            name: "reviews"
            base_path: "reviews"
            model_version_policy { specific { versions: 1 versions: 3 } }
            version_labels { key: 'stable' value: 1 }
            version_labels { key: "canary" value: 3 }
          }
          config { name: 'everything' base_path: '/m/e' model_version_policy { all {} } }
        }
        """,
    )
    assert load_model_config_file(path) == [
        ModelConfig("chnsenticorp", Path("/models/chnsenticorp"), "latest", latest_n=2),
        ModelConfig("reviews", tmp_path / "reviews", "specific", versions=(1, 3), version_labels={"stable": 1, "canary": 3}),
        ModelConfig("everything", Path("/m/e"), "all"),
    ]


def test_json_format(tmp_path):
    path = write(
        tmp_path,
        '{"models": [{"name": "m", "base_path": "/p", "version_policy": "latest", "latest_n": 3,'
        ' "version_labels": {"stable": 2}}]}',
        "models.json",
    )
    assert load_model_config_file(path) == [ModelConfig("m", Path("/p"), "latest", latest_n=3, version_labels={"stable": 2})]


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { name: 'm' base_path: '/p' base_paht: 'x' } }", "unknown model config field(s) ['base_paht']"),
        ("model_config_list { config { name: 'm' } }", "every model needs a string 'base_path'"),
        ("model_config_list { config { name: 'm' base_path: '/p' }", "missing '}'"),
        ("model_config_list { config { name: 'm' base_path: '/p' model_version_policy { newest {} } } }", "model_version_policy must hold one of"),
        ("model_config_list { config { name: 'm' base_path: '/p' model_version_policy { specific {} } } }", "needs --versions"),
        ("model_config_list { config { name: 'm' base_path: '/p' } config { name: 'm' base_path: '/q' } }", "['m'] appear more than once"),
        ("model_config_list { }", "lists no models"),
        ('{"models": [}', "invalid JSON at line 1"),
        ('{"model": []}', 'a JSON model config is {"models"'),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_model_config_file(write(tmp_path, text))
    assert message in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read --model_config_file"):
        load_model_config_file(tmp_path / "absent.config")
