"""A gRPC health probe (grpc.health.v1), for container health checks that have no grpc_health_probe:

    python -m bertserve.serving.grpc.probe                       # 127.0.0.1:8500, the whole server
    python -m bertserve.serving.grpc.probe 127.0.0.1:8500 tensorflow.serving.PredictionService

Prints the status and exits 0 when it is SERVING, 1 otherwise (NOT_SERVING while loading or
draining, or no answer within 2 s).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    argv = sys.argv[1:] if argv is None else argv
    target = argv[0] if argv else "127.0.0.1:8500"
    service = argv[1] if len(argv) > 1 else ""
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as error:
            print(f"{target} {service or '(server)'}: {error.code().name} {error.details() or ''}".rstrip())
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{target} {service or '(server)'}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
