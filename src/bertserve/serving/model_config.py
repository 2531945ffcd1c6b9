"""Which models a server serves: `ModelConfig`, from flags or from `--model_config_file`.

Two file formats are read:

* TF Serving's protobuf text format, for the subset of fields bertserve uses:

      model_config_list {
        config {
          name: 'chnsenticorp'
          base_path: '/models/chnsenticorp'
          model_platform: 'tensorflow'          # accepted and ignored: every model here is ONNX
          model_version_policy { latest { num_versions: 2 } }   # or all {} or specific { versions: 1 versions: 3 }
          version_labels { key: 'stable' value: 1 }
        }
      }

* JSON, the same fields with bertserve's flag names:

      {"models": [{"name": "chnsenticorp", "base_path": "/models/chnsenticorp",
                   "version_policy": "specific", "versions": [1, 3], "version_labels": {"stable": 1}}]}

A relative `base_path` is resolved against the config file's folder. Unknown fields are errors
(`ConfigError` naming the field), so a typo never silently serves the wrong thing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from bertserve.errors import ConfigError

VersionPolicy = Literal["latest", "all", "specific"]
POLICIES = ("latest", "all", "specific")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: Path
    version_policy: VersionPolicy = "latest"  # TF Serving's default: serve the newest version only
    latest_n: int = 1  # with "latest": how many of the newest versions stay loaded
    versions: tuple[int, ...] = ()  # with "specific": exactly these versions
    version_labels: Mapping[str, int] = field(default_factory=dict)  # e.g. {"stable": 1, "canary": 2}

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or ":" in self.name:
            raise ConfigError(f"model name {self.name!r} must be non-empty and contain no '/' or ':'")
        if self.version_policy not in POLICIES:
            raise ConfigError(f"model {self.name}: version policy {self.version_policy!r} is not one of {POLICIES}")
        if self.latest_n < 1:
            raise ConfigError(f"model {self.name}: --latest_n must be at least 1, got {self.latest_n}")
        if self.version_policy == "specific" and not self.versions:
            raise ConfigError(f"model {self.name}: the 'specific' version policy needs --versions, e.g. --versions 1,2")
        for label, version in self.version_labels.items():
            if not isinstance(version, int) or version <= 0:
                raise ConfigError(f"model {self.name}: version label {label!r} must map to a positive integer version")


def load_model_config_file(path: Path | str) -> list[ModelConfig]:
    """Read a `--model_config_file` (TF Serving text format or JSON; see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read --model_config_file {path}: {error.strerror}") from error
    entries = _json_entries(text, path) if text.lstrip().startswith("{") else _text_entries(text, path)
    configs = [_model_config(entry, path) for entry in entries]
    if not configs:
        raise ConfigError(f"{path}: lists no models; add a config {{ name: ... base_path: ... }} entry")
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{path}: model names must be unique, {duplicates} appear more than once")
    return configs


def _model_config(entry: dict[str, Any], path: Path) -> ModelConfig:
    known = {"name", "base_path", "model_platform", "version_policy", "latest_n", "versions", "version_labels"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown model config field(s) {unknown}; known: {sorted(known)}")
    for required in ("name", "base_path"):
        if not isinstance(entry.get(required), str):
            raise ConfigError(f"{path}: every model needs a string {required!r}")
    base_path = Path(entry["base_path"]).expanduser()
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    try:
        return ModelConfig(
            name=entry["name"],
            base_path=base_path,
            version_policy=entry.get("version_policy", "latest"),
            latest_n=int(entry.get("latest_n", 1)),
            versions=tuple(int(version) for version in entry.get("versions", ())),
            version_labels={str(key): int(value) for key, value in dict(entry.get("version_labels", {})).items()},
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path}: model {entry['name']!r}: {error}") from error


def _json_entries(text: str, path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from error
    if not isinstance(document, dict) or set(document) != {"models"} or not isinstance(document["models"], list):
        raise ConfigError(f'{path}: a JSON model config is {{"models": [{{"name": ..., "base_path": ...}}]}}')
    if not all(isinstance(entry, dict) for entry in document["models"]):
        raise ConfigError(f"{path}: every entry of 'models' must be an object")
    return document["models"]


# ---- TF Serving's protobuf text format (the subset above) -----------------------------------

_TOKEN = re.compile(r"""\s+|\#[^\n]*|(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_][\w.]*|-?\d+)|(?P<punct>[{}:<>,;])""")


def _tokens(text: str, path: Path) -> list[str]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise ConfigError(f"{path}:{line}: cannot parse {text[position:position + 20]!r}")
        position = match.end()
        for kind in ("string", "word", "punct"):
            if match.group(kind) is not None:
                token = match.group(kind)
                tokens.append(token if kind != "punct" else {"<": "{", ">": "}"}.get(token, token))
    return [token for token in tokens if token not in (",", ";")]


def _parse_message(tokens: list[str], start: int, path: Path) -> tuple[list[tuple[str, Any]], int]:
    """Fields of one message as (name, value) pairs in order; a nested message's value is a list."""
    fields: list[tuple[str, Any]] = []
    index = start
    while index < len(tokens) and tokens[index] != "}":
        name = tokens[index]
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ConfigError(f"{path}: expected a field name, found {name!r}")
        index += 1
        if index < len(tokens) and tokens[index] == ":":
            index += 1
        if index >= len(tokens):
            raise ConfigError(f"{path}: field {name!r} has no value")
        if tokens[index] == "{":
            value, index = _parse_message(tokens, index + 1, path)
            if index >= len(tokens):
                raise ConfigError(f"{path}: missing '}}' after field {name!r}")
            index += 1
        else:
            raw = tokens[index]
            value = raw[1:-1] if raw[0] in "'\"" else raw
            index += 1
        fields.append((name, value))
    return fields, index


def _text_entries(text: str, path: Path) -> list[dict[str, Any]]:
    tokens = _tokens(text, path)
    top, end = _parse_message(tokens, 0, path)
    if end != len(tokens):
        raise ConfigError(f"{path}: unbalanced '}}'")
    if [name for name, _ in top] != ["model_config_list"]:
        raise ConfigError(f"{path}: expected one top-level 'model_config_list {{ config {{ ... }} }}'")
    entries = []
    for name, config in top[0][1]:
        if name != "config" or not isinstance(config, list):
            raise ConfigError(f"{path}: model_config_list holds only 'config {{ ... }}' entries, found {name!r}")
        entries.append(_text_entry(config, path))
    return entries


def _text_entry(config: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for name, value in config:
        if name in ("name", "base_path", "model_platform"):
            entry[name] = value
        elif name == "version_labels":
            pairs = dict(value) if isinstance(value, list) else {}
            if set(pairs) != {"key", "value"}:
                raise ConfigError(f"{path}: version_labels must be {{ key: 'stable' value: 1 }}")
            entry.setdefault("version_labels", {})[pairs["key"]] = pairs["value"]
        elif name == "model_version_policy":
            if not isinstance(value, list) or len(value) != 1 or value[0][0] not in POLICIES:
                raise ConfigError(f"{path}: model_version_policy must hold one of latest {{}}, all {{}}, specific {{}}")
            policy, body = value[0]
            entry["version_policy"] = policy
            for field_name, field_value in body:
                if policy == "latest" and field_name == "num_versions":
                    entry["latest_n"] = field_value
                elif policy == "specific" and field_name == "versions":
                    entry.setdefault("versions", []).append(field_value)
                else:
                    raise ConfigError(f"{path}: unknown field {field_name!r} in model_version_policy {{ {policy} }}")
        else:
            entry[name] = value  # rejected with the list of known fields by _model_config
    return entry
