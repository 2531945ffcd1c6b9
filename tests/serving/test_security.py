"""Safe defaults: loopback bind, no file reachable from a URL, no link out of the base path, no
pickles loaded, no management route.

Each refused version folder must show as END with a clear error in status while the version
already serving keeps serving (TF Serving's availability-preserving behaviour).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from pathlib import Path

import httpx
import pytest

from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig, ModelManager, VersionState
from bertserve.serving.server import ServerOptions
from inprocess_server import InProcessServer


def test_server_binds_loopback_unless_told_otherwise():
    from bertserve.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert parser.parse_args([]).host == "127.0.0.1"
    assert ServerOptions().host == "127.0.0.1"


def statuses_after_one_poll(base: Path) -> dict[int, tuple[str, str, str]]:
    """Poll `base` once with the real loader; {version: (state, error_code, error_message)}."""

    async def poll() -> dict[int, tuple[str, str, str]]:
        manager = ModelManager([ModelConfig("m", base, version_policy="all")], BatchingOptions(), poll_seconds=60)
        await manager.poll_once()
        try:
            assert manager.servable("m", 1).version == 1  # the good version serves whatever else happens
            return {s.version: (s.state.value, s.error_code, s.error_message) for s in manager.statuses("m")}
        finally:
            await manager.stop()

    return asyncio.run(poll())


@pytest.fixture
def base(tiny_export, tmp_path) -> Path:
    folder = tmp_path / "models" / "m"
    shutil.copytree(tiny_export, folder / "1")
    return folder


def test_version_folder_linking_out_of_the_base_path_is_refused(base, tiny_export, tmp_path):
    outside = tmp_path / "elsewhere" / "2"
    shutil.copytree(tiny_export, outside)
    os.symlink(outside, base / "2")
    state, code, message = statuses_after_one_poll(base)[2]
    assert (state, code) == ("END", "INVALID_ARGUMENT")
    assert message == (
        f"version folder {base / '2'} resolves to {outside.resolve()}, outside the model base path {base.resolve()}; "
        "symbolic links that leave the base path are refused: copy the version folder into the base path"
    )


def test_version_folder_linking_inside_the_base_path_is_served(base, tiny_export):
    # A common deployment: stage under BASE/.staging, then link the version number to it.
    shutil.copytree(tiny_export, base / ".staging" / "3")
    os.symlink(base / ".staging" / "3", base / "3")
    assert statuses_after_one_poll(base)[3] == ("AVAILABLE", "OK", "")


def test_file_linking_out_of_a_version_folder_is_refused(base, tiny_export, tmp_path):
    shutil.copytree(tiny_export, base / "2")
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    os.symlink(secret, base / "2" / "extra.json")
    state, code, message = statuses_after_one_poll(base)[2]
    assert (state, code) == ("END", "INVALID_ARGUMENT")
    assert "extra.json is a symbolic link" in message


@pytest.mark.parametrize("name", ["weights.pkl", "model.pt", "checkpoint.pth", "exploit.py", "data.npy", "pytorch_model.bin", "model.bin"])
def test_folder_holding_anything_but_onnx_json_text_is_refused(base, tiny_export, name):
    shutil.copytree(tiny_export, base / "2")
    (base / "2" / name).write_bytes(b"\x80\x04K\x01.")  # a pickle of the number 1
    state, code, message = statuses_after_one_poll(base)[2]
    assert (state, code) == ("END", "INVALID_ARGUMENT")
    assert f"refusing {name}: only" in message and "no pickles" in message


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    folder = tmp_path_factory.mktemp("security") / "tiny"
    shutil.copytree(tiny_export, folder / "1")
    with InProcessServer(folder, version_labels={"stable": 1}) as running:
        yield running


@pytest.mark.parametrize(
    "method, path, status, message",
    [
        ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", 404, "Could not find any versions of model ../../etc/passwd"),
        ("GET", "/v1/models/%2Fetc%2Fpasswd/metadata", 404, "Servable not found for request: Latest(/etc/passwd)"),
        ("GET", "/v1/models/tiny/versions/..%2F1", 400, "Malformed request: GET /v1/models/tiny/versions/..%2F1"),
        ("GET", "/v1/models/tiny/labels/..%2F..%2Fx", 400, "Unrecognized servable version label: ../../x"),
        ("POST", "/v1/models/tiny/labels/%2E%2E:predict", 400, "Unrecognized servable version label: .."),
        # No management route exists: loading, unloading and reloading happen only through the
        # files under the base path, which the server polls.
        ("POST", "/v1/admin/reload", 400, "Malformed request: POST /v1/admin/reload"),
        ("POST", "/v1/models/tiny:reload", 400, "Malformed request: POST /v1/models/tiny:reload"),
        ("DELETE", "/v1/models/tiny", 400, "Malformed request: DELETE /v1/models/tiny"),
        ("PUT", "/v1/models/tiny/versions/2", 400, "Malformed request: PUT /v1/models/tiny/versions/2"),
    ],
)
def test_no_url_reaches_a_file_or_manages_models(server, method, path, status, message):
    response = httpx.request(method, server.url + path, json={"instances": ["x"]} if method == "POST" else None)
    assert (response.status_code, response.json()) == (status, {"error": message})


def test_openapi_documents_no_route_that_changes_state(server):
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method in operations:
            assert method == "get" or path.endswith((":predict", ":classify", ":regress", "/infer")), (method, path)


def test_cors_is_off_by_default(server):
    preflight = httpx.options(
        f"{server.url}/v1/models/tiny:predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    simple = httpx.post(f"{server.url}/v1/models/tiny:predict", json={"instances": ["x"]}, headers={"Origin": "https://evil.example"})
    for response in (preflight, simple):
        assert "access-control-allow-origin" not in response.headers
