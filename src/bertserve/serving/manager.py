"""The model manager: finds version folders, loads them, swaps them in and out without downtime.

TF Serving's vocabulary: a *source* polls each model's base path every
`--file_system_poll_wait_seconds` for integer-named version folders (`BASE/1569141360/`; hidden
folders such as the exporter's `BASE/.tmp-*` and non-integer names are ignored); the *version
policy* picks the aspired versions (`latest` N, `all`, `specific`); a *loader*
(`ExportedModel.load`, run in a worker thread so the event loop keeps serving) loads each one;
the *manager* switches requests to it and only then unloads the versions no longer aspired, after
their in-flight requests finish.

Availability first (what we chose where TF Serving leaves a gap):
* A version that fails to load is shown as `END` with an error code (`NOT_FOUND`,
  `INVALID_ARGUMENT`, ...) and message, and counts as not loadable: the policy picks among the
  other versions, so the version already serving keeps serving. It is retried only when its folder
  changes (a file added, removed or rewritten), not on every poll.
* A version whose folder disappears is unloaded once another aspired version is AVAILABLE. If the
  base path holds no version folders at all (deleted, or an unmounted volume), the loaded versions
  keep serving and a warning is logged: a model is never left with zero versions by accident.

    manager = ModelManager([ModelConfig("m", Path("models/m"))], BatchingOptions())
    await manager.start()            # polls in the background; manager.ready() once loaded
    servable = manager.servable("m") # latest AVAILABLE version
    await manager.stop()
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from bertserve.errors import BertServeError, ExportError, RequestError, VersionNotFoundError
from bertserve.serving.batching import BatchingOptions
from bertserve.serving.model_config import ModelConfig
from bertserve.serving.servable import Servable

__all__ = ["ModelConfig", "ModelManager", "Servable", "VersionState", "VersionStatus", "find_versions"]

logger = logging.getLogger(__name__)

# How long an unloading version may take to finish its in-flight requests before it is closed
# anyway; the REST layer's own request timeout (30 s by default) bounds them too.
UNLOAD_DRAIN_SECONDS = 30.0
# A request handler that picked a servable just before the switch may not have entered it yet
# (asyncio.wait_for starts it on the next loop turn); give it this long before draining.
UNLOAD_GRACE_SECONDS = 0.1


class VersionState(str, Enum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: VersionState
    error_code: str = "OK"
    error_message: str = ""


@dataclass
class _Version:
    status: VersionStatus
    servable: Servable | None = None
    failed_fingerprint: tuple | None = None  # the folder as it was when its load failed


def find_versions(base_path: Path) -> dict[int, Path]:
    """The source: integer-named, non-hidden subfolders of `base_path` (missing path -> {})."""
    try:
        children = list(Path(base_path).iterdir())
    except OSError:
        return {}
    return {
        int(child.name): child
        for child in children
        if child.name.isdigit() and int(child.name) > 0 and child.is_dir()
    }


def _fingerprint(folder: Path) -> tuple:
    """What changes when a folder's files change: names, sizes and modification times."""
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()))
    except OSError:
        return ()


def return_freed_memory() -> None:
    """Give the memory of an unloaded model back to the operating system.

    glibc keeps freed heap pages for reuse, so without this the resident size only grows: an
    m3e-sized model (~100 MB) reloaded 8 times left the process 120 MB above its baseline for
    good; with `malloc_trim` it went back to the baseline after every unload (docs/reliability.md)."""
    gc.collect()  # reference cycles could keep the ONNX Runtime session alive
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return
    libc.malloc_trim(0)


def _check_inside(folder: Path, base_path: Path) -> None:
    """Refuse a version folder that is (or sits behind) a symbolic link leading out of the base
    path: whoever can write a link into BASE must not make the server load files from elsewhere."""
    real_base, real_folder = Path(base_path).resolve(), Path(folder).resolve()
    if not real_folder.is_relative_to(real_base):
        raise ExportError(
            f"version folder {folder} resolves to {real_folder}, outside the model base path {real_base}; "
            "symbolic links that leave the base path are refused: copy the version folder into the base path"
        )


def _error_code(error: BaseException) -> str:
    """TF Serving's canonical error code for a failed load."""
    if isinstance(error, (FileNotFoundError, VersionNotFoundError)):
        return "NOT_FOUND"
    if isinstance(error, BertServeError):
        return "INVALID_ARGUMENT"
    return "UNKNOWN"


class ModelManager:
    """Serves the versions of each configured model (see the module docstring)."""

    def __init__(
        self,
        configs: list[ModelConfig],
        batching: BatchingOptions,
        poll_seconds: float = 1.0,
        loader: Callable[[Path], Any] | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ):
        if loader is None:
            from bertserve.inference.model import ExportedModel

            loader = ExportedModel.load
        self.configs = {config.name: config for config in configs}
        self.batching = batching
        self.poll_seconds = poll_seconds
        self._loader = loader
        self._on_batch = on_batch  # metrics hook: (model name, batch size)
        self._versions: dict[str, dict[int, _Version]] = {name: {} for name in self.configs}
        self._poll_task: asyncio.Task | None = None
        self._unloads: set[asyncio.Task] = set()
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling; the first poll runs in the background so the server can answer
        /readyz (503) while the first versions load."""
        self._poll_task = asyncio.create_task(self._poll_forever(), name="model-manager-poll")

    async def stop(self) -> None:
        """Stop polling, let every loaded version finish its requests, then unload it."""
        self._stopping = True
        if self._poll_task is not None:
            self._poll_task.cancel()
            try:
                await self._poll_task
            except asyncio.CancelledError:
                pass
        await self.wait_for_unloads()
        for name, versions in self._versions.items():
            for version in list(versions):
                if versions[version].servable is not None:
                    await self._unload(name, version)

    async def poll_once(self) -> None:
        """One pass of the source over every model (tests call this instead of waiting)."""
        for name in self.configs:
            try:
                await self._reconcile(name)
            except Exception:  # a bug for one model must not stop serving the others
                logger.exception("model %s: polling failed", name)

    async def wait_for_unloads(self) -> None:
        """Wait until the background unloads started so far are done (for tests and shutdown)."""
        if self._unloads:
            await asyncio.gather(*self._unloads, return_exceptions=True)

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_seconds)

    # ---- the source, the policy and the swap --------------------------------------------------

    def _aspired(self, config: ModelConfig, found: dict[int, Path]) -> list[int]:
        """Versions the policy wants loaded, newest first, skipping ones that failed unchanged."""
        versions = self._versions[config.name]
        loadable = sorted(
            (
                version
                for version, folder in found.items()
                if version not in versions
                or versions[version].failed_fingerprint is None
                or versions[version].failed_fingerprint != _fingerprint(folder)
            ),
            reverse=True,
        )
        if config.version_policy == "latest":
            return loadable[: config.latest_n]
        if config.version_policy == "specific":
            return [version for version in loadable if version in config.versions]
        return loadable

    async def _reconcile(self, name: str) -> None:
        config = self.configs[name]
        versions = self._versions[name]
        found = find_versions(config.base_path)
        if not found:
            if any(entry.servable is not None for entry in versions.values()):
                logger.warning("model %s: no version folders under %s; keeping the loaded versions", name, config.base_path)
            return
        # Load newest first; a failure makes the policy fall back to the next version.
        while True:
            aspired = self._aspired(config, found)
            pending = [v for v in aspired if v not in versions or versions[v].servable is None]
            if not pending:
                break
            await self._load(name, pending[0], found[pending[0]])
        if not any(versions[v].status.state == VersionState.AVAILABLE for v in aspired):
            return  # nothing new to switch to: keep whatever serves now
        for version, entry in list(versions.items()):
            if entry.servable is not None and entry.status.state == VersionState.AVAILABLE and version not in aspired:
                reason = "its folder was removed" if version not in found else "the version policy no longer wants it"
                logger.info("model %s: unloading version %d (%s)", name, version, reason)
                task = asyncio.create_task(self._unload(name, version))
                self._unloads.add(task)
                task.add_done_callback(self._unloads.discard)

    async def _load(self, name: str, version: int, folder: Path) -> None:
        versions = self._versions[name]
        versions[version] = _Version(VersionStatus(version, VersionState.LOADING))
        logger.info("model %s: loading version %d from %s", name, version, folder)
        try:
            _check_inside(folder, self.configs[name].base_path)
            model = await asyncio.to_thread(self._loader, folder)
            servable = Servable(name, model, self.batching, on_batch=self._batch_hook(name))
            await servable.start()
        except Exception as error:
            code = _error_code(error)
            logger.error("model %s: version %d failed to load (%s): %s", name, version, code, error)
            versions[version] = _Version(
                VersionStatus(version, VersionState.END, code, str(error)), failed_fingerprint=_fingerprint(folder)
            )
            return
        versions[version] = _Version(VersionStatus(version, VersionState.AVAILABLE), servable=servable)
        logger.info("model %s: version %d is AVAILABLE", name, version)

    async def _unload(self, name: str, version: int) -> None:
        entry = self._versions[name][version]
        servable = entry.servable
        if servable is None or entry.status.state == VersionState.UNLOADING:
            return
        # UNLOADING first: new requests go to another version from now on.
        self._versions[name][version] = _Version(VersionStatus(version, VersionState.UNLOADING), servable=servable)
        await asyncio.sleep(UNLOAD_GRACE_SECONDS)
        if not await servable.drain(UNLOAD_DRAIN_SECONDS):
            logger.warning("model %s: version %d still had %d requests after %.0f s; unloading anyway",
                           name, version, servable.in_flight, UNLOAD_DRAIN_SECONDS)
        await servable.close()
        self._versions[name][version] = _Version(VersionStatus(version, VersionState.END))
        del entry, servable  # the last references: the model can be freed now
        await asyncio.to_thread(return_freed_memory)
        logger.info("model %s: version %d unloaded", name, version)

    def _batch_hook(self, name: str) -> Callable[[int], None] | None:
        if self._on_batch is None:
            return None
        hook = self._on_batch
        return lambda size: hook(name, size)

    # ---- what the REST layer asks -------------------------------------------------------------

    def model_names(self) -> list[str]:
        return list(self.configs)

    def ready(self) -> bool:
        """True when every configured model has an AVAILABLE version (and we are not stopping)."""
        return not self._stopping and all(
            any(entry.status.state == VersionState.AVAILABLE for entry in versions.values())
            for versions in self._versions.values()
        )

    def _resolve_label(self, name: str, label: str) -> int:
        version = self.configs[name].version_labels.get(label)
        if version is None:
            # TF Serving's text and code (INVALID_ARGUMENT -> 400).
            raise RequestError(f"Unrecognized servable version label: {label}", 400)
        return version

    def statuses(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        """Model status, newest version first; TF Serving's 404 texts for unknown models/versions."""
        versions = self._versions.get(name)
        if not versions:
            raise RequestError(f"Could not find any versions of model {name}", 404)
        if label is not None:
            version = self._resolve_label(name, label)
        if version is not None:
            if version not in versions:
                raise RequestError(f"Could not find version {version} of model {name}", 404)
            return [versions[version].status]
        return [versions[v].status for v in sorted(versions, reverse=True)]

    def servable(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request: the latest AVAILABLE version unless one is named.

        Errors keep TF Serving's predict texts: 404 `Servable not found for request: Latest(m)` /
        `Specific(m, 7)` (also for a version still loading or unloading)."""
        versions = self._versions.get(name, {})
        if label is not None and name in self.configs:
            version = self._resolve_label(name, label)
        if version is None:
            available = [v for v, entry in versions.items() if entry.status.state == VersionState.AVAILABLE]
            if not available:
                raise RequestError(f"Servable not found for request: Latest({name})", 404)
            return versions[max(available)].servable  # type: ignore[return-value]
        entry = versions.get(version)
        if entry is None or entry.status.state != VersionState.AVAILABLE:
            raise RequestError(f"Servable not found for request: Specific({name}, {version})", 404)
        return entry.servable  # type: ignore[return-value]

    def loaded(self) -> list[Servable]:
        """Every AVAILABLE servable (for metrics: queue depth, loaded versions)."""
        return [
            entry.servable
            for versions in self._versions.values()
            for entry in versions.values()
            if entry.servable is not None and entry.status.state == VersionState.AVAILABLE
        ]
