"""The .proto files and their generation (serving/grpc/protos/): every message we declare matches
TF Serving's field for field, and generation works from any output folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bertserve.serving.grpc import protos

ROOT = Path(__file__).resolve().parents[3]
TF_PYTHON = ROOT / ".venv-tf" / "bin" / "python"
OURS = [protos.load(name)[0] for name in ("tensorflow_core", "tensorflow_error", "tensorflow_serving")]
# Where each of our messages lives in TensorFlow / TF Serving's own Python packages.
OFFICIAL_MODULES = [
    "tensorflow.core.framework.tensor_pb2", "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2", "tensorflow.core.example.example_pb2",
    "tensorflow.core.example.feature_pb2", "tensorflow_serving.apis.model_pb2", "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.input_pb2", "tensorflow_serving.apis.classification_pb2",
    "tensorflow_serving.apis.regression_pb2", "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2", "tensorflow_serving.apis.model_management_pb2",
    "tensorflow_serving.apis.status_pb2", "tensorflow_serving.apis.inference_pb2",
]


def our_messages() -> dict[str, dict[str, list]]:
    """full message name -> {field name: [number, type, label]}, nested messages included."""
    found: dict[str, dict[str, list]] = {}

    def visit(descriptor) -> None:
        if descriptor.GetOptions().map_entry:
            return
        found[descriptor.full_name] = {f.name: [f.number, f.type, f.is_repeated] for f in descriptor.fields}
        for nested in descriptor.nested_types:
            visit(nested)

    for module in OURS:
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            visit(descriptor)
    return found


def test_generate_writes_importable_modules_and_a_stamp_anywhere(tmp_path):
    target = protos.generate(tmp_path)
    assert target == tmp_path / "bertserve" / "serving" / "grpc" / "protos"
    names = sorted(path.name for path in target.iterdir())
    assert "tensorflow_serving_pb2.py" in names and "tensorflow_serving_pb2_grpc.py" in names
    assert (target / protos.STAMP_FILE).read_text().strip() == protos.fingerprint()
    assert not [name for name in names if name.startswith(".generate-")]  # the scratch folder is gone
    source = (target / "tensorflow_serving_pb2.py").read_text()
    assert "from bertserve.serving.grpc.protos import tensorflow_core_pb2" in source


def test_the_fingerprint_follows_the_proto_files(tmp_path):
    for proto in protos.proto_files():
        shutil.copy(proto, tmp_path / proto.name)
    assert protos.fingerprint(tmp_path) == protos.fingerprint()
    (tmp_path / "extra.proto").write_text('syntax = "proto3";\npackage extra;\n')
    assert protos.fingerprint(tmp_path) != protos.fingerprint()


def test_service_names_are_tf_servings():
    serving = OURS[2]
    services = {name: [m.name for m in service.methods] for name, service in serving.DESCRIPTOR.services_by_name.items()}
    assert services == {"PredictionService": ["Classify", "Regress", "Predict", "MultiInference", "GetModelMetadata"],
                        "ModelService": ["GetModelStatus", "HandleReloadConfigRequest"]}
    assert serving.DESCRIPTOR.package == "tensorflow.serving"


@pytest.mark.skipif(not (ROOT / ".venv-tf" / ".installed").is_file(),
                    reason=".venv-tf (tensorflow-cpu + tensorflow-serving-api) is absent: run scripts/setup_tf_client.sh")
def test_every_declared_field_matches_the_official_protos():
    script = f"""
import importlib, json
modules = {OFFICIAL_MODULES!r}
found = {{}}
def visit(d):
    if d.GetOptions().map_entry:
        return
    found[d.full_name] = {{f.name: [f.number, f.type, f.is_repeated] for f in d.fields}}
    for n in d.nested_types:
        visit(n)
for name in modules:
    for d in importlib.import_module(name).DESCRIPTOR.message_types_by_name.values():
        visit(d)
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_status_pb2
found["enums"] = {{"tensorflow.DataType": dict(types_pb2.DataType.items()),
                  "tensorflow.serving.ModelVersionStatus.State": dict(get_model_status_pb2.ModelVersionStatus.State.items())}}
try:
    from tsl.protobuf import error_codes_pb2
except ImportError:
    from tensorflow.core.protobuf import error_codes_pb2
found["enums"]["tensorflow.error.Code"] = dict(error_codes_pb2.Code.items())
print(json.dumps(found))
"""
    done = subprocess.run([str(TF_PYTHON), "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    official = json.loads(done.stdout.strip().splitlines()[-1])
    mismatches = []
    core, errors, serving = OURS
    ours_enums = {"tensorflow.DataType": core.DataType, "tensorflow.error.Code": errors.Code,
                  "tensorflow.serving.ModelVersionStatus.State": serving.ModelVersionStatus.State}
    for name, enum in ours_enums.items():
        for value_name, number in enum.items():
            if official["enums"][name].get(value_name) != number:
                mismatches.append(f"{name}.{value_name}: ours {number}, TF's {official['enums'][name].get(value_name)}")
    for message, fields in our_messages().items():
        if message not in official or message == "enums":
            mismatches.append(f"{message}: not in TF Serving's protos")
            continue
        for name, spec in fields.items():
            if official[message].get(name) != spec:
                mismatches.append(f"{message}.{name}: ours {spec}, TF's {official[message].get(name)}")
    assert mismatches == []
