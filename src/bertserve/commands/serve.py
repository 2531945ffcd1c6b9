"""`bertserve serve`: the TensorFlow-Serving-compatible REST model server (see `bertserve.serving`)."""

from __future__ import annotations

import argparse

HELP = "serve exported models over TF Serving's REST and gRPC APIs (hot reload, batching, metrics)"
DESCRIPTION = """Serve every version folder BASE/<integer>/ written by `bertserve export` over TensorFlow
Serving's REST API on --rest_api_port (8501) and its gRPC API (PredictionService, ModelService,
grpc.health.v1, reflection) on --port (8500; --port 0 turns gRPC off), both bound to --host.
Flags keep TF Serving's names (`--flag value` and `--flag=value` both work). The Open Inference
Protocol (KServe V2, Triton's API) is served beside it: REST under /v2 on the same port, gRPC
inference.GRPCInferenceService on --port (docs/serving.md, section 10).

The server polls BASE every --file_system_poll_wait_seconds: a new version is loaded in the
background and takes over only once AVAILABLE; the old one is unloaded after its in-flight
requests finish. A version that fails to load shows state END and its error in
GET /v1/models/NAME, and the previous version keeps serving.

Beside /v1/...: GET /healthz, GET /readyz (503 until every model is AVAILABLE and while
shutting down), GET /monitoring/prometheus/metrics (also /metrics). SIGTERM drains: /readyz turns
503 and gRPC health NOT_SERVING, new connections and calls are refused, in-flight requests and
calls finish within --drain_seconds, exit 0; a second SIGTERM or Ctrl-C cancels what is still in flight.

--model_config_file lists several models, in TF Serving's text format:
  model_config_list {
    config { name: 'chnsenticorp' base_path: '/models/chnsenticorp' model_platform: 'tensorflow'
             model_version_policy { latest { num_versions: 2 } }
             version_labels { key: 'stable' value: 1569141360 } }
  }
or as JSON: {"models": [{"name": "chnsenticorp", "base_path": "/models/chnsenticorp"}]}

examples:
  bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp
  bertserve serve --model_name=chnsenticorp --model_base_path=models/chnsenticorp --rest_api_port=8501
  bertserve serve --model_config_file models.config --max_batch_size 16 --batch_timeout_micros 2000
  bertserve serve --model_name m --model_base_path models/m --version_policy specific --versions 1,2
  bertserve serve --model_name m --model_base_path models/m --host 0.0.0.0 --access_log json
  bertserve serve --model_name m --model_base_path models/m --port 0           # REST only
  curl -d '{"instances": ["这家酒店很好"]}' http://127.0.0.1:8501/v1/models/chnsenticorp:predict
  bertserve online --protocol grpc --url 127.0.0.1:8500 --model chnsenticorp
  curl -d '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["很好"]}]}' http://127.0.0.1:8501/v2/models/chnsenticorp/infer
"""


def _version_list(text: str) -> tuple[int, ...]:
    try:
        versions = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated version numbers like 1,2, got {text!r}") from None
    if not versions or min(versions) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive version numbers like 1,2, got {text!r}")
    return versions


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port lies in 0-65535, got {port}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models (either --model_name + --model_base_path, or --model_config_file)")
    models.add_argument("--model_name", help="name clients use in /v1/models/NAME")
    models.add_argument("--model_base_path", help="folder holding integer version folders (BASE/1569141360/)")
    models.add_argument("--model_config_file", help="TF Serving model_config_list text file or JSON listing several models")
    models.add_argument("--version_policy", choices=("latest", "all", "specific"), default="latest",
                        help="which versions stay loaded (default: latest)")
    models.add_argument("--latest_n", type=int, default=1, help="with latest: how many newest versions (default: 1)")
    models.add_argument("--versions", type=_version_list, default=(), help="with specific: versions to serve, e.g. 1,2")
    models.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="how often BASE is checked for new versions (default: 1)")

    server = parser.add_argument_group("server")
    server.add_argument("--rest_api_port", type=_port, default=8501, help="REST port (default: 8501)")
    server.add_argument("--port", type=_port, default=8500,
                        help="gRPC port, TF Serving's PredictionService and ModelService (default: 8500; 0: no gRPC)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1; 0.0.0.0 exposes it)")
    server.add_argument("--rest_api_timeout_in_ms", type=int, default=30000, help="request deadline (default: 30000 = TF Serving's)")
    server.add_argument("--cors_origin", action="append", default=[], help="allow browser calls from this origin (repeatable; default: none)")
    server.add_argument("--access_log", choices=("json", "text", "off"), default="text", help="request log format (default: text)")
    server.add_argument("--drain_seconds", type=float, default=10.0, help="grace for in-flight requests on SIGTERM (default: 10)")
    server.add_argument("--shutdown_delay_seconds", type=float, default=0.0,
                        help="on SIGTERM keep serving this long with /readyz 503 before closing (default: 0)")

    batching = parser.add_argument_group("batching (TF Serving's knobs)")
    batching.add_argument("--max_batch_size", type=int, default=8, help="rows per model call (default: 8, measured best here)")
    batching.add_argument("--batch_timeout_micros", type=int, default=0,
                          help="max wait to fill a batch (default: 0: never wait; rows queued while the engine is busy still batch)")
    batching.add_argument("--max_enqueued_batches", type=int, default=256, help="queue bound in batches; full -> 503 (default: 256)")
    batching.add_argument("--num_batch_threads", type=int, default=1, help="model calls in parallel (default: 1)")
    batching.add_argument("--max_batch_tokens", type=int, default=0,
                          help="also cap each batch at this many padded tokens (rows x longest row), like Hugging Face "
                               "TEI; long texts then batch in fewer rows (default: 0 = rows only)")
    batching.add_argument("--inline_engine_calls", choices=("idle", "never"), default="idle",
                          help="idle: a request that finds the server idle runs on the event loop, skipping the "
                               "thread hand-off; under load batches always run in a worker thread (default: idle)")
    engine = parser.add_argument_group("inference engine")
    engine.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: ONNX Runtime's CUDA execution provider (install onnxruntime-gpu; ONNX exports only)")
    engine.add_argument("--intra_op_threads", type=int, default=None,
                        help="engine threads per model call (like TF Serving's --tensorflow_intra_op_parallelism; default: all cores)")
    engine.add_argument("--engine_tuning", choices=("on", "off"), default="on",
                        help="on: at load, try the engine settings that matter on this CPU (OpenVINO fp32/bf16 "
                             "precision, hint, threads) for about --engine_tuning_seconds and keep the fastest within "
                             "the export's parity bound, cached per CPU and export; off: use the pins below or the "
                             "export's recorded settings (default: on)")
    engine.add_argument("--engine_tuning_seconds", type=float, default=1.0,
                        help="time budget of tuning, compilation included (default: 1)")
    engine.add_argument("--engine_tuning_cache", default=None,
                        help="folder for tuning results (default: $BERTSERVE_CACHE_DIR or ~/.cache/bertserve, + /engine-tuning)")
    engine.add_argument("--inference_precision", choices=("fp32", "bf16", "default"), default=None,
                        help="OpenVINO precision of the non-int8 ops; pins it (default: tuned; 'default' = OpenVINO's own)")
    engine.add_argument("--performance_hint", choices=("LATENCY", "THROUGHPUT"), default=None,
                        help="OpenVINO performance hint; pins it (default: tuned, LATENCY unless --num_batch_threads > 1)")


def model_configs(args: argparse.Namespace) -> list:
    from pathlib import Path

    from bertserve.errors import ConfigError
    from bertserve.serving.model_config import ModelConfig, load_model_config_file

    if args.model_config_file:
        if args.model_name or args.model_base_path:
            raise ConfigError("use either --model_config_file or --model_name/--model_base_path, not both")
        return load_model_config_file(args.model_config_file)
    if not args.model_name or not args.model_base_path:
        raise ConfigError("give --model_name and --model_base_path (or --model_config_file); see `bertserve serve --help`")
    base_path = Path(args.model_base_path).expanduser()
    if not base_path.is_dir():
        raise ConfigError(f"--model_base_path {base_path} is not a folder; export a model there with `bertserve export`")
    return [
        ModelConfig(
            name=args.model_name,
            base_path=base_path.resolve(),
            version_policy=args.version_policy,
            latest_n=args.latest_n,
            versions=tuple(args.versions),
        )
    ]


def batching_options(args: argparse.Namespace):
    """The batcher's knobs from the flags (shared by `serve` and `ray`)."""
    from bertserve.serving.batching import BatchingOptions

    return BatchingOptions(
        max_batch_size=args.max_batch_size,
        batch_timeout_micros=args.batch_timeout_micros,
        max_enqueued_batches=args.max_enqueued_batches,
        num_batch_threads=args.num_batch_threads,
        max_batch_tokens=getattr(args, "max_batch_tokens", 0),
        inline_when_idle=getattr(args, "inline_engine_calls", "never") == "idle",
    )


def tuning_options(args: argparse.Namespace):
    """How the engine settings are chosen at load, from the flags (see `bertserve.inference.tuning`)."""
    from pathlib import Path

    from bertserve.inference.tuning import TuningOptions

    return TuningOptions(
        enabled=args.engine_tuning == "on",
        budget_seconds=args.engine_tuning_seconds,
        cache_dir=Path(args.engine_tuning_cache).expanduser() if args.engine_tuning_cache else None,
        precision=args.inference_precision,
        performance_hint=args.performance_hint,
        threads=args.intra_op_threads,
        batch_threads=args.num_batch_threads,
    )


def app_options(args: argparse.Namespace):
    """The HTTP app's options from the flags (shared by `serve` and `ray`)."""
    from bertserve.errors import ConfigError
    from bertserve.serving.app import AppOptions

    if args.rest_api_timeout_in_ms <= 0:
        raise ConfigError("--rest_api_timeout_in_ms must be positive")
    return AppOptions(
        request_timeout_seconds=args.rest_api_timeout_in_ms / 1000,
        cors_origins=tuple(args.cors_origin),
        access_log_json=args.access_log == "json",
    )


def check_durations(args: argparse.Namespace) -> None:
    from bertserve.errors import ConfigError

    for name in ("file_system_poll_wait_seconds", "drain_seconds", "shutdown_delay_seconds"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name} must be >= 0")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from bertserve.serving.server import ServerOptions, serve

    configs = model_configs(args)
    check_durations(args)
    options = ServerOptions(
        host=args.host,
        port=args.rest_api_port,
        poll_seconds=max(0.05, args.file_system_poll_wait_seconds),
        drain_seconds=args.drain_seconds,
        shutdown_delay_seconds=args.shutdown_delay_seconds,
        uvicorn_access_log=args.access_log == "text",
        device=args.device,
        intra_op_threads=args.intra_op_threads,
        tuning=tuning_options(args),
        grpc_port=args.port,
    )
    return asyncio.run(serve(configs, options, batching_options(args), app_options(args)))
