"""`bertserve ray`: the `serve` app as N Ray Serve replicas behind Ray's HTTP proxy (see
`bertserve.serving.ray_serve`). Needs Ray: `pip install 'bertserve[ray]'`."""

from __future__ import annotations

import argparse

from bertserve.commands import serve as serve_command

HELP = "serve exported models as N Ray Serve replicas behind Ray's HTTP proxy (same REST API)"
DESCRIPTION = """Run the same server as `bertserve serve` (TF Serving's REST API, hot reload, dynamic
batching, /healthz, /readyz, metrics) as N Ray Serve replicas behind Ray's HTTP proxy on
--host:--rest_api_port. Every `serve` flag works here too; the Ray flags below choose the number
of replicas or turn on Ray Serve autoscaling. Each response carries X-Bertserve-Replica, the id of
the replica that answered. Ctrl-C or SIGTERM shuts Ray Serve down (in-flight requests get
--drain_seconds) and exits 0.

By default a local Ray cluster is started for this process (--ray_address local); give
--ray_address auto (or ray://HOST:10001) to use a running cluster, where every node must have
bertserve installed and see --model_base_path at the same path. Needs Ray:
pip install 'bertserve[ray]'.

examples:
  bertserve ray --model_name chnsenticorp --model_base_path models/chnsenticorp --replicas 2
  bertserve ray --model_name chnsenticorp --model_base_path models/chnsenticorp --min_replicas 1 --max_replicas 4
  bertserve ray --model_name m --model_base_path /shared/models/m --ray_address auto --host 0.0.0.0
  curl -d '{"instances": ["这家酒店很好"]}' http://127.0.0.1:8501/v1/models/chnsenticorp:predict
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    serve_command.add_arguments(parser)
    # Ray's proxy speaks HTTP only: no gRPC port here (use `bertserve serve` for TF Serving's gRPC API).
    parser.set_defaults(port=0)
    group = parser.add_argument_group("Ray Serve")
    group.add_argument("--replicas", type=int, default=1, help="fixed number of replicas (default: 1)")
    group.add_argument("--min_replicas", type=int, default=None, help="autoscaling: fewest replicas (default: 1)")
    group.add_argument("--max_replicas", type=int, default=None,
                       help="autoscaling: most replicas; setting it turns Ray Serve autoscaling on")
    group.add_argument("--target_ongoing_requests", type=float, default=8.0,
                       help="autoscaling: in-flight requests per replica to aim for (default: 8)")
    group.add_argument("--max_ongoing_requests", type=int, default=64,
                       help="in-flight requests one replica takes before Ray queues at the proxy (default: 64)")
    group.add_argument("--num_cpus_per_replica", type=float, default=1.0,
                       help="CPUs Ray reserves per replica, also its ONNX Runtime threads (default: 1)")
    group.add_argument("--ray_address", default="local",
                       help="'local' starts a Ray cluster for this process (default); 'auto' or ray://... joins one")


def ray_options(args: argparse.Namespace):
    from bertserve.serving.ray_serve import RayOptions

    return RayOptions(
        replicas=args.replicas,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_ongoing_requests=args.target_ongoing_requests,
        max_ongoing_requests=args.max_ongoing_requests,
        num_cpus_per_replica=args.num_cpus_per_replica,
        graceful_shutdown_seconds=args.drain_seconds,
        poll_seconds=max(0.05, args.file_system_poll_wait_seconds),
    )


def run(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal
    import threading

    from bertserve.errors import ConfigError
    from bertserve.serving.server import bind

    try:
        import ray
        from ray import serve
    except ImportError:
        raise ConfigError("Ray is not installed; install it with: pip install 'bertserve[ray]'") from None
    from bertserve.serving.ray_serve import application

    logger = logging.getLogger("bertserve.commands.ray")
    if args.port:
        raise ConfigError("bertserve ray serves the REST APIs only (Ray's HTTP proxy); drop --port, "
                          "or use `bertserve serve` for TF Serving's gRPC API")
    configs = serve_command.model_configs(args)
    serve_command.check_durations(args)
    options = ray_options(args)
    batching = serve_command.batching_options(args)
    app_options = serve_command.app_options(args)
    bind(args.host, args.rest_api_port).close()  # a port in use is a one-line error, not Ray's log dump

    init: dict = {"address": args.ray_address, "include_dashboard": False, "logging_level": logging.WARNING}
    if args.ray_address == "local":
        # Ray places a replica only where its CPU reservation fits: make room for the replicas
        # asked for even on a small machine (they then share cores, which the user chose).
        needed = options.num_cpus_per_replica * (options.max_replicas or options.replicas)
        cpus = os.cpu_count() or 1
        if needed > cpus:
            logger.warning("%g CPUs reserved for replicas on %d cores: replicas will share cores", needed, cpus)
        init["num_cpus"] = max(cpus, int(needed + 0.999))
    ray.init(**init)
    # After ray.init, whose crash handler would otherwise take SIGTERM and kill the process
    # mid-request; before serve.run, so a SIGTERM during start-up still shuts down cleanly.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.rest_api_port})
        serve.run(application(configs, options, batching, app_options), name="bertserve", route_prefix="/")
        logger.warning("Ray Serve: %s on http://%s:%d", _describe(options), args.host, args.rest_api_port)
        stop.wait()
        logger.info("shutting down Ray Serve (grace %.1f s)", options.graceful_shutdown_seconds)
        serve.shutdown()
    finally:
        ray.shutdown()
    return 0


def _describe(options) -> str:
    if options.autoscaling:
        return f"autoscaling {options.min_replicas or 1}-{options.max_replicas} replicas"
    return f"{options.replicas} replica(s)"
