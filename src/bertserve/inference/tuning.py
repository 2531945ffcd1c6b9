"""Engine settings chosen on the machine that serves, by measuring, not baked in from another CPU.

Which OpenVINO settings are fastest depends on the CPU: bf16 for the non-quantised ops won on an
AMX Xeon and lost to fp32 on an AMD EPYC with AVX512-BF16 (docs/benchmarks.md, ../shared/PERF_NOTES.md).
So at load the server tries the few configurations that matter on this CPU, on real warm-up texts,
for a bounded time (about a second, compilation included), and keeps the fastest one whose outputs
stay within the export's parity bound of the most precise one (same argmax on every warm-up text,
max |dp| <= the export's `parity_tolerance`):

- OpenVINO: inference precision fp32, and bf16 only where the CPU supports it; the LATENCY hint,
  and THROUGHPUT (one stream per batch thread) when the batcher runs several batches at once;
  all cores, and half of them on machines with 4 or more.
- ONNX Runtime: the thread count (its precision is the graph's own).
- An int8 export made with `--fp32-variant` also offers its unquantised twin (`variants/fp32/`),
  tried first as the most precise: int8 loses to fp32 on CPUs without int8 dot-product
  instructions (AVX2 without VNNI), and wins where they exist.

The choice is cached per CPU model/flags + export checksum + library versions + pins in a folder
the user can set (`--engine_tuning_cache`, default ~/.cache/bertserve/engine-tuning), so the next
start compiles only the chosen configuration. A pinned setting (`--inference_precision bf16`, ...)
narrows the candidates; `--engine_tuning off` uses exactly the pins (or the export's recorded
precision) without measuring.

    from bertserve.inference.tuning import TuningOptions, load_tuned_engine
    engine = load_tuned_engine(version_dir, tokenizer=tokenizer, export_config=config, options=TuningOptions())
    engine.settings   # {"engine": "openvino", "precision": "fp32", "hint": "LATENCY", "threads": 2, "streams": 1}
    engine.tuning     # {"source": "tuned", "seconds": 0.8, "trials": [...], ...}

This module never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bertserve.errors import ConfigError, ExportError
from bertserve.inference.engines import (
    INFERENCE_PRECISIONS,
    PERFORMANCE_HINTS,
    Engine,
    create_engine,
    available_variants,
    export_engine_settings,
    resolve_engine_kind,
)
from bertserve.layout import MANIFEST_FILE

logger = logging.getLogger(__name__)

TUNING_CHOICES = ("on", "off")
CACHE_FORMAT = 1  # bump when the cached JSON changes shape: old entries are then ignored
# The CPU flags that change which settings win: vector width, bf16/int8 dot products, AMX.
RELEVANT_CPU_FLAGS = (
    "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
)
# When the export records no parity bound: the bound int8 exports are held to (export.version).
DEFAULT_PARITY_BOUND = 0.05
BUDGET_SPENT = "skipped: tuning budget spent"
# Interleaved warm-up rounds per candidate at most: a median of 15 is steady enough, and stopping
# there keeps a fast machine's cold start short instead of spending the whole budget.
MAX_ROUNDS = 15
# Real-looking warm-up texts of the lengths a review classifier sees (short, median, long): each
# runs alone (batch 1, the 1-client case), then all together (a batch, the loaded case).
WARMUP_TEXTS = (
    "很好",
    "房间很干净，服务也不错，下次还会再来。",
    "这本书的内容一般，印刷质量很差，物流也慢，不推荐购买。",
    "酒店位置很好，离地铁站只有五分钟，但是房间隔音太差，晚上很吵，早餐品种少，前台服务态度还可以，"
    "总体来说性价比一般，如果只住一晚可以考虑，长住的话建议选择别的酒店。",
    "The screen is bright and the battery lasts two days; 价格也合理。",
)


@dataclass(frozen=True)
class TuningOptions:
    enabled: bool = True  # False: `--engine_tuning off`, use the pins (or the export's precision) as they are
    budget_seconds: float = 1.0  # all candidates together, compilation included (cold start < 2 s)
    cache_dir: Path | None = None  # None: default_cache_dir()
    precision: str | None = None  # pin "fp32" | "bf16" | "default" (OpenVINO's own choice)
    performance_hint: str | None = None  # pin "LATENCY" | "THROUGHPUT"
    threads: int | None = None  # pin the engine threads
    num_streams: int | None = None  # pin OpenVINO streams
    batch_threads: int = 1  # batches run at once by the server (--num_batch_threads)

    def __post_init__(self) -> None:
        if self.budget_seconds < 0:
            raise ConfigError(f"--engine_tuning_seconds must be >= 0, got {self.budget_seconds}")
        if self.precision is not None and self.precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"--inference_precision must be one of {list(INFERENCE_PRECISIONS)}, got {self.precision!r}")
        if self.performance_hint is not None and self.performance_hint not in PERFORMANCE_HINTS:
            raise ConfigError(f"--performance_hint must be one of {list(PERFORMANCE_HINTS)}, got {self.performance_hint!r}")
        for name in ("threads", "num_streams", "batch_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"engine {name} must be at least 1, got {value}")


@dataclass(frozen=True)
class Candidate:
    """One engine configuration: the keyword arguments `create_engine` gets."""

    precision: str | None = None  # OpenVINO only
    hint: str = "LATENCY"
    threads: int | None = None
    streams: int | None = None
    variant: str | None = None  # OpenVINO only: "fp32" runs variants/fp32/ instead of the main model

    def engine_options(self, kind: str) -> dict[str, Any]:
        if kind == "onnxruntime":
            return {"threads": self.threads}
        return {"threads": self.threads, "performance_hint": self.hint, "inference_precision": self.precision,
                "num_streams": self.streams, "variant": self.variant}


@dataclass
class Trial:
    candidate: Candidate
    milliseconds: float | None = None  # median time of one warm-up round; None: not measured
    max_abs_diff: float | None = None  # max |p - p_reference| over the warm-up texts
    same_argmax: bool | None = None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self.candidate), "ms": self.milliseconds, "max_abs_diff": self.max_abs_diff,
                "same_argmax": self.same_argmax, **({"note": self.note} if self.note else {})}


def default_cache_dir() -> Path:
    """$BERTSERVE_CACHE_DIR, else $XDG_CACHE_HOME/bertserve, else ~/.cache/bertserve; + engine-tuning."""
    root = os.environ.get("BERTSERVE_CACHE_DIR")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bertserve")
    return Path(root) / "engine-tuning"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_description() -> dict[str, Any]:
    """The CPU model, the flags that matter for the choice, and the cores this process may use."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif name.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "flags": sorted(flag for flag in RELEVANT_CPU_FLAGS if flag in flags), "cores": usable_cores()}


def bf16_supported(cpu: dict[str, Any] | None = None) -> bool:
    """Whether OpenVINO's CPU plugin can run bf16 here (it asks the CPU itself; flags otherwise)."""
    try:
        import openvino

        return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        flags = set((cpu or cpu_description())["flags"])
        return bool(flags & {"avx512_bf16", "amx_bf16"})


def export_checksum(version_dir: Path) -> str:
    """The export's identity: the hash of its manifest (which holds every file's SHA-256)."""
    manifest = Path(version_dir) / MANIFEST_FILE
    digest = hashlib.sha256()
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    else:  # an unverified folder: name, size and time of every file
        for path in sorted(Path(version_dir).rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(version_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def library_versions(kind: str) -> dict[str, str]:
    from bertserve import __version__

    versions = {"bertserve": __version__}
    try:
        module = __import__(kind)
        versions[kind] = str(getattr(module, "__version__", "") or getattr(module, "get_version", lambda: "")())
    except ImportError:
        versions[kind] = "missing"
    return versions


def candidates(kind: str, options: TuningOptions, cores: int, bf16: bool, variants: Sequence[str] = ()) -> list[Candidate]:
    """The configurations worth trying for engine `kind` on this CPU, the most precise first
    (`variants`: the export's other-precision twins, e.g. ["fp32"]; they come before the main model)."""
    threads = [options.threads] if options.threads else sorted({cores, *([cores // 2] if cores >= 4 else [])}, reverse=True)
    if kind == "onnxruntime":
        return [Candidate(precision=None, hint="LATENCY", threads=count) for count in threads]
    if options.precision is not None:
        precisions = [options.precision]
    else:
        precisions = ["fp32", *(["bf16"] if bf16 else [])]
    if options.performance_hint is not None:
        hints = [options.performance_hint]
    else:
        hints = ["LATENCY", *(["THROUGHPUT"] if options.batch_threads > 1 else [])]
    found = []
    for variant in [*variants, None]:
        for precision in precisions:
            for hint in hints:
                streams = options.num_streams or (options.batch_threads if hint == "THROUGHPUT" else None)
                for count in threads:
                    found.append(Candidate(precision=precision, hint=hint, threads=count, streams=streams, variant=variant))
    return found


def cache_key(version_dir: Path, kind: str, options: TuningOptions, cpu: dict[str, Any]) -> str:
    pins = {name: getattr(options, name) for name in ("precision", "performance_hint", "threads", "num_streams", "batch_threads")}
    identity = {"format": CACHE_FORMAT, "cpu": cpu, "export": export_checksum(version_dir), "engine": kind,
                "libraries": library_versions(kind), "pins": pins}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def warmup_inputs(tokenizer: Any, texts: Sequence[str] = WARMUP_TEXTS) -> list[dict[str, np.ndarray]]:
    """Each text alone, then all of them as one padded batch."""
    batches = [tokenizer.encode([text]).as_dict() for text in texts]
    batches.append(tokenizer.encode(list(texts)).as_dict())
    return batches


def parity_bound(export_config: dict[str, Any]) -> float:
    value = export_config.get("parity_tolerance")
    return float(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT_PARITY_BOUND


def load_tuned_engine(
    version_dir: Path | str,
    engine: str = "auto",
    *,
    tokenizer: Any,
    export_config: dict[str, Any],
    options: TuningOptions,
    device: str = "cpu",
    **engine_options: Any,
) -> Engine:
    """The engine for `version_dir` with the settings measured fastest here (see the module
    docstring). The returned engine carries `settings` and `tuning` (how they were chosen)."""
    version_dir = Path(version_dir)
    kind = resolve_engine_kind(version_dir, engine)
    started = time.perf_counter()
    if not options.enabled or device.lower() != "cpu":
        return _pinned(version_dir, kind, options, device, started, engine_options)
    cpu = cpu_description()
    variants = available_variants(version_dir) if kind == "openvino" else []
    found = candidates(kind, options, cpu["cores"], kind == "openvino" and bf16_supported(cpu), variants)
    # The candidate's settings win over any given in engine_options (cache_dir, cpu_pinning, ... pass through).
    build = lambda candidate: create_engine(version_dir, kind, device=device, **{**engine_options, **candidate.engine_options(kind)})
    if len(found) == 1:
        only = Trial(found[0], note="nothing else to try")
        return _describe(version_dir, build(found[0]), "only-candidate", started, trials=[only])
    cache_dir = options.cache_dir or default_cache_dir()
    key = cache_key(version_dir, kind, options, cpu)
    cached = read_cached_choice(cache_dir, key, found)
    if cached is not None:
        candidate, trials = cached
        return _describe(version_dir, build(candidate), "cached", started, key=key, trials=trials)
    chosen_engine, chosen, trials = measure(build, found, warmup_inputs(tokenizer), parity_bound(export_config),
                                            options.budget_seconds)
    if any(trial.note == BUDGET_SPENT for trial in trials):
        # Not a choice among all candidates: do not keep it; the next start tries again.
        logger.warning("%s: engine tuning ran out of its %.1f s budget before trying every configuration; "
                       "raise --engine_tuning_seconds to try them all", version_dir, options.budget_seconds)
    else:
        write_cached_choice(cache_dir, key, cpu, chosen, trials, chosen_engine.settings, version_dir)
    return _describe(version_dir, chosen_engine, "tuned", started, key=key, trials=trials)


def _pinned(version_dir: Path, kind: str, options: TuningOptions, device: str, started: float,
            engine_options: dict[str, Any]) -> Engine:
    pins = Candidate(
        precision=options.precision or str(export_engine_settings(version_dir).get("inference_precision", "fp32")),
        hint=options.performance_hint or "LATENCY", threads=options.threads, streams=options.num_streams,
    )
    built = create_engine(version_dir, kind, device=device, **{**engine_options, **pins.engine_options(kind)})
    return _describe(version_dir, built, "pinned", started)


def _describe(version_dir: Path, engine: Engine, source: str, started: float, key: str | None = None,
              trials: Sequence[Trial] | Sequence[dict] = ()) -> Engine:
    engine.tuning = {  # type: ignore[attr-defined]
        "source": source,
        "seconds": round(time.perf_counter() - started, 3),
        **({"cache_key": key} if key else {}),
        "trials": [trial.as_json() if isinstance(trial, Trial) else trial for trial in trials],
    }
    measured = [trial for trial in engine.tuning["trials"] if trial.get("ms") is not None]  # type: ignore[attr-defined]
    logger.info("%s: engine settings %s (%s, %.2f s)%s", version_dir, getattr(engine, "settings", {}), source,
                engine.tuning["seconds"], f"; trials: {measured}" if measured else "")  # type: ignore[attr-defined]
    return engine


def measure(
    build: Callable[[Candidate], Engine],
    found: Sequence[Candidate],
    inputs: Sequence[dict[str, np.ndarray]],
    bound: float,
    budget_seconds: float,
) -> tuple[Engine, Candidate, list[Trial]]:
    """Build the candidates (as many as the budget allows; the first always), run the warm-up
    rounds interleaved, keep the fastest whose outputs agree with the first (most precise) one.
    The budget counts from the first loaded engine: loading one is the cost of serving at all."""
    started: float | None = None
    built: list[tuple[Trial, Engine]] = []
    skipped: list[Trial] = []
    for candidate in found:
        # Leave time to measure: stop compiling more once 60 % of the budget is gone.
        if started is not None and time.perf_counter() - started > 0.6 * budget_seconds:
            skipped.append(Trial(candidate, note=BUDGET_SPENT))
            continue
        try:
            built.append((Trial(candidate), build(candidate)))
        except Exception as error:  # e.g. a precision this CPU refuses: not a candidate then
            skipped.append(Trial(candidate, note=f"failed to load: {str(error).splitlines()[0][:200]}"))
        if built and started is None:
            started = time.perf_counter()
    if not built:
        raise ExportError(f"no engine configuration could be loaded: {'; '.join(trial.note for trial in skipped)}")
    outputs = [[_probabilities(engine, batch) for batch in inputs] for _, engine in built]  # also the first, slow call
    rounds: list[list[float]] = [[] for _ in built]
    started = started if started is not None else time.perf_counter()
    while min(len(times) for times in rounds) < 2 or (time.perf_counter() - started < budget_seconds and len(rounds[0]) < MAX_ROUNDS):
        for times, (_, engine) in zip(rounds, built):
            round_started = time.perf_counter()
            for batch in inputs:
                engine.run(_feed(engine, batch))
            times.append((time.perf_counter() - round_started) * 1000)
    reference = outputs[0]
    for (trial, _), times, result in zip(built, rounds, outputs):
        trial.milliseconds = round(statistics.median(times), 3)
        trial.max_abs_diff = float(max(np.abs(mine - theirs).max() for mine, theirs in zip(result, reference)))
        trial.same_argmax = all(np.array_equal(mine.argmax(-1), theirs.argmax(-1)) for mine, theirs in zip(result, reference))
        if not trial.same_argmax or trial.max_abs_diff > bound:
            trial.note = f"outside the parity bound {bound:g}"
    eligible = [index for index, (trial, _) in enumerate(built) if not trial.note]
    best = min(eligible, key=lambda index: built[index][0].milliseconds)
    return built[best][1], built[best][0].candidate, [trial for trial, _ in built] + skipped


def _feed(engine: Engine, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: value for name, value in batch.items() if name in engine.input_names}


def _probabilities(engine: Engine, batch: dict[str, np.ndarray]) -> np.ndarray:
    logits = engine.run(_feed(engine, batch)).astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def read_cached_choice(cache_dir: Path, key: str, found: Sequence[Candidate]) -> tuple[Candidate, list[dict]] | None:
    """The cached choice for `key` if it is still one of today's candidates; None otherwise."""
    path = Path(cache_dir) / f"{key}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        candidate = Candidate(**entry["chosen"])
        trials = list(entry.get("trials", []))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as error:
        logger.warning("ignoring unreadable engine tuning cache %s (%s); tuning again", path, error)
        return None
    return (candidate, trials) if candidate in found else None


def write_cached_choice(cache_dir: Path, key: str, cpu: dict[str, Any], chosen: Candidate, trials: Sequence[Trial],
                        settings: dict[str, Any], version_dir: Path) -> None:
    entry = {"format": CACHE_FORMAT, "chosen": asdict(chosen), "settings": settings, "cpu": cpu,
             "export": str(version_dir), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "trials": [trial.as_json() for trial in trials]}
    path = Path(cache_dir) / f"{key}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(entry, indent=1), encoding="utf-8")
        partial.replace(path)  # atomic: two servers starting at once never read half a file
    except OSError as error:
        logger.warning("cannot write the engine tuning cache %s (%s); the next start will tune again", path, error)

