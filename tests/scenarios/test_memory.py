"""Memory across reloads: an unloaded version's model is really freed and its memory handed back.

The RSS measurement with an m3e-sized model (~100 MB a version) is in
`scripts/reliability/soak.py --phase faults` (docs/reliability.md); here, with the tiny model, we
prove the precondition: after the unload nothing references the old model any more.
"""

from __future__ import annotations

import asyncio
import shutil
import weakref

from bertserve.serving.batching import BatchingOptions
from bertserve.serving.manager import ModelConfig, ModelManager, return_freed_memory


def test_unloaded_versions_are_garbage(tiny_export, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(tiny_export, base / "1")

    async def reload_three_times() -> list[weakref.ref]:
        manager = ModelManager([ModelConfig("m", base)], BatchingOptions(), poll_seconds=60)
        await manager.poll_once()
        models = []
        for version in (2, 3, 4):
            servable = manager.servable("m")
            await servable.predict_texts(["很好"])
            models.append(weakref.ref(servable.model))
            del servable
            shutil.copytree(tiny_export, base / str(version))
            await manager.poll_once()
            await manager.wait_for_unloads()
        assert manager.servable("m").version == 4 and len(manager.loaded()) == 1
        await manager.stop()
        return models

    models = asyncio.run(reload_three_times())
    assert [model() for model in models] == [None, None, None]


def test_return_freed_memory_collects_garbage_cycles():
    class Node:
        pass

    node = Node()
    node.self_reference = node  # a cycle: only the garbage collector frees it
    alive = weakref.ref(node)
    del node
    return_freed_memory()  # glibc: also malloc_trim; elsewhere only the garbage collection
    assert alive() is None
