"""The V2 tests' app: the REST app over a real manager holding the tiny model as versions 1 and 2.

Imported by the test modules (`from v2_app import v2, v2_base`): a conftest.py here would shadow
the `conftest` module that tests/serving/grpc imports by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app_client import AppClient


@pytest.fixture(scope="module")
def v2_base(tiny_export, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("v2") / "tiny"
    for version in (1, 2):
        shutil.copytree(tiny_export, folder / str(version))
    return folder


@pytest.fixture(scope="module")
def v2(v2_base):
    from bertserve.serving.prometheus import ServingMetrics

    metrics = ServingMetrics()
    client = AppClient(v2_base, max_instances=4, max_text_chars=50, max_body_bytes=64 * 1024, metrics=metrics)
    client.metrics = metrics
    yield client
    client.close()
