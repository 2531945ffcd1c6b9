"""The manifest of an export version folder: a checksum for every file, checked before loading.

    manifest.json = {
      "format": 1,                       # manifest layout version
      "algorithm": "sha256",
      "created": "2024-01-01T00:00:00Z", # UTC, when the export was written
      "files": {"model.onnx": {"sha256": "...", "bytes": 123}, "tokenizer/vocab.txt": {...}, ...}
    }

Every file in the folder except `manifest.json` itself is listed, with `/`-separated paths
relative to the folder. Only the suffixes in `ALLOWED_SUFFIXES` may appear at all: an export
holds graphs, JSON and text, never pickles or other loadable code, so a stray `.bin`/`.pkl` is
refused even when verification is off.

One exception, by exact name: an OpenVINO export's IR is `model.xml` (the graph) plus `model.bin`
(its weights: raw tensor bytes that the XML addresses by offset and size; OpenVINO never
unpickles or executes it). So `model.xml` is allowed at the top of the folder (or of an ensemble
member's folder, `members/<index>/`, or of a precision variant's, `variants/<name>/`), and `model.bin` only there and only beside `model.xml`; any
other `.bin` (e.g. `pytorch_model.bin`, a pickle) is still refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bertserve.errors import ExportError
from bertserve.files import read_json, sha256_of, write_json_atomic
from bertserve.layout import MANIFEST_FILE, MEMBERS_DIR, OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE, VARIANTS_DIR

MANIFEST_FORMAT = 1
ALLOWED_SUFFIXES = frozenset({".onnx", ".json", ".txt", ".md"})


def model_folder(parent: Path) -> bool:
    """The version folder itself, an ensemble member's `members/<index>`, or a variant's `variants/<name>`."""
    parts = parent.parts
    if len(parts) == 2 and parts[0] == VARIANTS_DIR:
        return parts[1].isidentifier()
    return not parts or (len(parts) == 2 and parts[0] == MEMBERS_DIR and parts[1].isdigit())


def allowed(folder: Path, relative: str) -> bool:
    path = Path(relative)
    if path.suffix.lower() in ALLOWED_SUFFIXES:
        return True
    if not model_folder(path.parent) or path.name not in (OPENVINO_MODEL_FILE, OPENVINO_WEIGHTS_FILE):
        return False
    return path.name == OPENVINO_MODEL_FILE or (Path(folder) / path.parent / OPENVINO_MODEL_FILE).is_file()


def list_files(folder: Path) -> list[str]:
    """Relative `/` paths of every file under `folder` (sorted), refusing disallowed kinds."""
    folder = Path(folder)
    relative_paths = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            # A link could point anywhere on the machine; an export is self-contained.
            raise ExportError(f"{folder}: {relative} is a symbolic link; an export folder must hold plain files only")
        if path.is_dir():
            continue
        if not allowed(folder, relative):
            raise ExportError(
                f"{folder}: refusing {relative}: only {sorted(ALLOWED_SUFFIXES)} and OpenVINO's "
                f"{OPENVINO_MODEL_FILE}/{OPENVINO_WEIGHTS_FILE} files may be in an export "
                "(no pickles or other executable formats); remove it or re-export"
            )
        relative_paths.append(relative)
    return relative_paths


def build_manifest(folder: Path) -> dict[str, Any]:
    files = {}
    for relative in list_files(folder):
        if relative == MANIFEST_FILE:
            continue
        path = Path(folder) / relative
        files[relative] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    return {
        "format": MANIFEST_FORMAT,
        "algorithm": "sha256",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }


def write_manifest(folder: Path) -> dict[str, Any]:
    manifest = build_manifest(folder)
    write_json_atomic(Path(folder) / MANIFEST_FILE, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise ExportError(f"{folder}: no {MANIFEST_FILE}; is this a folder written by `bertserve export`?")
    try:
        manifest = read_json(path)
    except ValueError as error:
        raise ExportError(f"{path}: not valid JSON ({error}); re-export the model") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ExportError(f"{path}: malformed manifest (needs a 'files' object); re-export the model")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ExportError(
            f"{path}: manifest format {manifest.get('format')!r} is not supported (expected {MANIFEST_FORMAT})"
        )
    return manifest


def verify_folder(folder: Path, check_checksums: bool = True) -> dict[str, Any]:
    """Check the folder against its manifest: same set of files, same sizes and sha256.

    Raises `ExportError` naming the first problem. Returns the manifest."""
    folder = Path(folder)
    present = [relative for relative in list_files(folder) if relative != MANIFEST_FILE]
    manifest = read_manifest(folder)
    if not check_checksums:
        return manifest
    expected = manifest["files"]
    unlisted = sorted(set(present) - set(expected))
    if unlisted:
        raise ExportError(f"{folder}: files not in {MANIFEST_FILE}: {unlisted}; remove them or re-export")
    missing = sorted(set(expected) - set(present))
    if missing:
        raise ExportError(f"{folder}: files listed in {MANIFEST_FILE} are missing: {missing}; re-export the model")
    for relative, entry in expected.items():
        path = folder / relative
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise ExportError(
                f"{folder}: {relative} has {size} bytes but the manifest says {entry.get('bytes')}; "
                "the file was modified or truncated, re-export the model"
            )
        if sha256_of(path) != entry.get("sha256"):
            raise ExportError(
                f"{folder}: {relative} does not match its sha256 in {MANIFEST_FILE}; "
                "the file was modified or corrupted, re-export the model"
            )
    return manifest
