"""The model manager with an injected loader: swaps, failed loads, policies, polling, deletions."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from bertserve.errors import RequestError
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig, ModelManager, VersionState, VersionStatus

from lifecycle_fakes import fake_loader, make_versions

AVAILABLE, END = VersionState.AVAILABLE, VersionState.END


def manager_for(base: Path, **config) -> ModelManager:
    options = BatchingOptions(batch_timeout_micros=0)
    return ModelManager([ModelConfig("m", base, **config)], options, poll_seconds=0.02, loader=fake_loader)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


async def served_version(manager: ModelManager, **which) -> int:
    result = await manager.servable("m", **which).predict_texts(["很好"], deadline=time.monotonic() + 5)
    return int(result[0, 0])


def test_failed_load_keeps_the_old_version_serving_and_shows_the_error(tmp_path):
    make_versions(tmp_path, 1)

    async def scenario():
        manager = manager_for(tmp_path)
        await manager.poll_once()
        make_versions(tmp_path, 2)
        (tmp_path / "2" / "BROKEN").touch()
        await manager.poll_once()
        served = await served_version(manager)
        statuses = manager.statuses("m")
        await manager.stop()
        return served, statuses

    served, statuses = run(scenario())
    assert served == 1
    assert statuses == [
        VersionStatus(2, END, "INVALID_ARGUMENT", f"{tmp_path / '2'}: model.onnx is not a valid ONNX model; re-export the model"),
        VersionStatus(1, AVAILABLE),
    ]


def test_a_failed_version_is_retried_only_when_its_folder_changes(tmp_path):
    make_versions(tmp_path, 1, 2)
    (tmp_path / "2" / "BROKEN").touch()
    calls: list[str] = []

    def counting_loader(path: Path):
        calls.append(path.name)
        return fake_loader(path)

    async def scenario():
        manager = ModelManager([ModelConfig("m", tmp_path)], BatchingOptions(), loader=counting_loader)
        await manager.poll_once()
        await manager.poll_once()
        (tmp_path / "2" / "BROKEN").unlink()  # the folder is fixed
        await manager.poll_once()
        await manager.wait_for_unloads()
        served = await served_version(manager)
        statuses = manager.statuses("m")
        await manager.stop()
        return served, statuses

    served, statuses = run(scenario())
    assert calls == ["2", "1", "2"]
    assert served == 2
    assert statuses == [VersionStatus(2, AVAILABLE), VersionStatus(1, END)]


def test_polling_picks_up_a_new_version_and_unloads_the_old_one(tmp_path):
    make_versions(tmp_path, 1)

    async def scenario():
        manager = manager_for(tmp_path)
        assert not manager.ready()
        await manager.start()
        for _ in range(200):
            if manager.ready():
                break
            await asyncio.sleep(0.01)
        first = await served_version(manager)
        # What `bertserve export` does: write a hidden temporary folder, then rename it.
        (tmp_path / ".tmp-3").mkdir()
        (tmp_path / ".tmp-3").rename(tmp_path / "3")
        for _ in range(200):
            if manager.statuses("m")[0] == VersionStatus(3, AVAILABLE) and manager.statuses("m")[1].state == END:
                break
            await asyncio.sleep(0.01)
        second = await served_version(manager)
        statuses = manager.statuses("m")
        await manager.stop()
        return first, second, statuses, manager.ready()

    first, second, statuses, ready_after_stop = run(scenario())
    assert (first, second) == (1, 3)
    assert statuses == [VersionStatus(3, AVAILABLE), VersionStatus(1, END)]
    assert not ready_after_stop


def test_hidden_and_non_integer_folders_are_ignored(tmp_path):
    make_versions(tmp_path, 4)
    for name in (".tmp-9", "latest", "10.bak", "0"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a folder")

    async def scenario():
        manager = manager_for(tmp_path)
        await manager.poll_once()
        statuses = manager.statuses("m")
        await manager.stop()
        return statuses

    assert run(scenario()) == [VersionStatus(4, AVAILABLE)]


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"version_policy": "latest", "latest_n": 2}, {3: AVAILABLE, 2: AVAILABLE}),
        ({"version_policy": "all"}, {3: AVAILABLE, 2: AVAILABLE, 1: AVAILABLE}),
        ({"version_policy": "specific", "versions": (1, 3, 7)}, {3: AVAILABLE, 1: AVAILABLE}),
    ],
)
def test_version_policies(tmp_path, config, expected):
    make_versions(tmp_path, 1, 2, 3)

    async def scenario():
        manager = manager_for(tmp_path, **config)
        await manager.poll_once()
        states = {status.version: status.state for status in manager.statuses("m")}
        by_version = {version: await served_version(manager, version=version) for version in expected}
        await manager.stop()
        return states, by_version

    states, by_version = run(scenario())
    assert states == expected
    assert by_version == {version: version for version in expected}


def test_deleted_folder_is_unloaded_but_the_model_never_goes_empty(tmp_path):
    make_versions(tmp_path, 1, 2)

    async def scenario():
        manager = manager_for(tmp_path)
        await manager.poll_once()
        assert await served_version(manager) == 2
        shutil.rmtree(tmp_path / "2")  # a bad version pulled: fall back to version 1
        await manager.poll_once()
        await manager.wait_for_unloads()  # the unload runs in the background
        after_delete = (await served_version(manager), manager.statuses("m"))
        shutil.rmtree(tmp_path / "1")  # nothing left on disk: keep serving what is loaded
        await manager.poll_once()
        after_empty = (await served_version(manager), manager.statuses("m"))
        await manager.stop()
        return after_delete, after_empty

    after_delete, after_empty = run(scenario())
    assert after_delete == (1, [VersionStatus(2, END), VersionStatus(1, AVAILABLE)])
    assert after_empty == after_delete


def test_unload_waits_for_in_flight_requests(tmp_path):
    make_versions(tmp_path, 1)

    async def scenario():
        manager = manager_for(tmp_path)
        await manager.poll_once()
        old = manager.servable("m")
        gate = asyncio.Event()
        original = old.batcher.submit

        async def slow_submit(*args, **kwargs):
            await gate.wait()
            return await original(*args, **kwargs)

        old.batcher.submit = slow_submit
        in_flight = asyncio.create_task(old.predict_texts(["x"]))
        await asyncio.sleep(0)
        make_versions(tmp_path, 2)
        await manager.poll_once()
        await asyncio.sleep(0.2)
        while_draining = manager.statuses("m", version=1)[0].state
        gate.set()
        result = await in_flight
        await manager.wait_for_unloads()
        after = manager.statuses("m", version=1)[0].state
        await manager.stop()
        return while_draining, int(result[0, 0]), after

    assert run(scenario()) == (VersionState.UNLOADING, 1, END)


def test_tf_serving_error_texts_and_version_labels(tmp_path):
    make_versions(tmp_path, 1, 2)

    async def scenario():
        manager = manager_for(tmp_path, version_policy="all", version_labels={"stable": 1, "canary": 2})
        errors = []
        for call in (
            lambda: manager.statuses("nope"),
            lambda: manager.servable("nope"),
            lambda: manager.statuses("m"),  # configured, nothing loaded yet
            lambda: manager.servable("m"),
        ):
            with pytest.raises(RequestError) as error:
                call()
            errors.append((error.value.status, str(error.value)))
        await manager.poll_once()
        for call in (
            lambda: manager.statuses("m", version=7),
            lambda: manager.servable("m", version=7),
            lambda: manager.servable("m", label="beta"),
        ):
            with pytest.raises(RequestError) as error:
                call()
            errors.append((error.value.status, str(error.value)))
        labelled = (await served_version(manager, label="stable"), await served_version(manager, label="canary"))
        status = manager.statuses("m", label="stable")
        await manager.stop()
        return errors, labelled, status

    errors, labelled, status = run(scenario())
    assert errors == [
        (404, "Could not find any versions of model nope"),
        (404, "Servable not found for request: Latest(nope)"),
        (404, "Could not find any versions of model m"),
        (404, "Servable not found for request: Latest(m)"),
        (404, "Could not find version 7 of model m"),
        (404, "Servable not found for request: Specific(m, 7)"),
        (400, "Unrecognized servable version label: beta"),
    ]
    assert labelled == (1, 2)
    assert status == [VersionStatus(1, AVAILABLE)]
