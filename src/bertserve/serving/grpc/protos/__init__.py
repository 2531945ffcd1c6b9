"""The .proto files of bertserve's gRPC services, and the Python modules generated from them.

    from bertserve.serving.grpc.protos import load
    serving_pb2, serving_grpc = load("tensorflow_serving")   # tensorflow_serving_pb2, ..._pb2_grpc

Each `NAME.proto` here becomes `NAME_pb2.py` (messages) and `NAME_pb2_grpc.py` (stubs) in this
folder. They are generated, never committed (.gitignore), in two places:
- at install time: `setup.py`'s build step runs `generate()` (for `pip install .` into the wheel,
  for `pip install -e .` into this source folder);
- on first import, when a .proto changed since (an editable install after a `git pull`): `load()`
  compares a hash of the .proto files with the one stamped beside the generated modules and
  regenerates when they differ, into this folder, or, when it is read-only, into a cache folder
  added to this package's `__path__`. That needs grpcio-tools, a runtime dependency for this reason.

Adding a service's .proto file (e.g. `grpc_predict_v2.proto` for the Open Inference Protocol):
1. put it here, with its own `package` (the wire names come from it);
2. import other files by their path from `src/`, e.g.
   `import "bertserve/serving/grpc/protos/tensorflow_core.proto";`, and Google's well-known types
   as `import "google/protobuf/any.proto";`;
3. in Python: `messages, stubs = load("grpc_predict_v2")`. Nothing else to register: every .proto
   file in this folder is generated. Do not import `..._pb2` modules directly before `load()` ran.
Keep this file free of bertserve imports: setup.py loads it by path at build time.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO_DIR = Path(__file__).resolve().parent
# The folder that holds `bertserve/`: protoc's import root, so generated modules import each other
# as `bertserve.serving.grpc.protos.NAME_pb2`.
IMPORT_ROOT = PROTO_DIR.parents[3]
PACKAGE_PATH = Path("bertserve", "serving", "grpc", "protos")
STAMP_FILE = "_generated.stamp"


def proto_files(proto_dir: Path = PROTO_DIR) -> list[Path]:
    return sorted(proto_dir.glob("*.proto"))


def fingerprint(proto_dir: Path = PROTO_DIR) -> str:
    """A hash of every .proto file's name and bytes, and of the protobuf runtime's major version
    (generated code runs on a runtime of its own major version, not older than the generator's)."""
    from google.protobuf import __version__ as protobuf_version

    digest = hashlib.sha256(protobuf_version.split(".")[0].encode())
    for path in proto_files(proto_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def generate(output_root: Path, proto_dir: Path = PROTO_DIR, import_root: Path = IMPORT_ROOT) -> Path:
    """Run protoc (from grpcio-tools) on every .proto file; the modules land in
    `output_root/bertserve/serving/grpc/protos/`. Files are written to a temporary folder and
    renamed into place, so a process importing them meanwhile never sees half a module."""
    from importlib.resources import files

    from grpc_tools import protoc

    target = Path(output_root) / PACKAGE_PATH
    target.mkdir(parents=True, exist_ok=True)
    well_known = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(dir=target, prefix=".generate-") as scratch:
        arguments = [
            "grpc_tools.protoc", f"-I{import_root}", f"-I{well_known}",
            f"--python_out={scratch}", f"--grpc_python_out={scratch}", f"--pyi_out={scratch}",
            *(str(import_root / PACKAGE_PATH / path.name) for path in proto_files(proto_dir)),
        ]
        if protoc.main(arguments) != 0:
            raise RuntimeError(f"protoc failed on {proto_dir}/*.proto (its message is above)")
        for generated in (Path(scratch) / PACKAGE_PATH).iterdir():
            os.replace(generated, target / generated.name)
    (target / STAMP_FILE).write_text(fingerprint(proto_dir) + "\n", encoding="utf-8")
    return target


def _is_current(folder: Path, expected: str) -> bool:
    try:
        return (folder / STAMP_FILE).read_text(encoding="utf-8").strip() == expected
    except OSError:
        return False


def _cache_root(expected: str) -> Path:
    """A writable folder for the modules: the user's cache, else the temp folder (a container user
    without a home, on a read-only root file system, still has /tmp)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    try:
        base.mkdir(parents=True, exist_ok=True)
        if not os.access(base, os.W_OK):
            raise OSError
    except (OSError, RuntimeError):
        base = Path(tempfile.gettempdir())
    return base / "bertserve" / f"grpc-{expected[:16]}"


_ready = False


def ensure_generated() -> None:
    """Make the generated modules importable, regenerating them when a .proto file changed."""
    global _ready
    if _ready:
        return
    expected = fingerprint()
    if not _is_current(PROTO_DIR, expected):
        if os.access(PROTO_DIR, os.W_OK):
            generate(IMPORT_ROOT)
        else:
            cache = _cache_root(expected)
            if not _is_current(cache / PACKAGE_PATH, expected):
                generate(cache)
            # Found before this folder's stale modules, under the same package name.
            __path__.insert(0, str(cache / PACKAGE_PATH))  # type: ignore[name-defined]  # noqa: F821
    _ready = True


def load(name: str) -> tuple[ModuleType, ModuleType]:
    """(NAME_pb2, NAME_pb2_grpc) for `NAME.proto` in this folder."""
    ensure_generated()
    messages = importlib.import_module(f"{__name__}.{name}_pb2")
    stubs = importlib.import_module(f"{__name__}.{name}_pb2_grpc")
    return messages, stubs


if __name__ == "__main__":  # python src/bertserve/serving/grpc/protos/__init__.py OUTPUT_ROOT
    print(generate(Path(sys.argv[1]) if len(sys.argv) > 1 else IMPORT_ROOT))
