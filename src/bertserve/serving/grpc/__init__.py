"""gRPC beside REST: TensorFlow Serving's gRPC API on --port (8500), and room for more services.

    bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp --port 8500

- `protos/`: the .proto files (wire-compatible subsets of TF Serving's) and their generated
  modules; `protos/__init__.py` says how to add another .proto file.
- `server.py`: one `grpc.aio` server on the REST server's event loop: health checking
  (grpc.health.v1), reflection, message size limit, drain on SIGTERM. It adds every module listed
  in `server.SERVICE_MODULES`; each exposes `add_to_server(server, context) -> list[str]` (the full
  names of the services it added) and gets a `GrpcContext` (manager, options, metrics).
- `rpc.py`: turns a service descriptor and a dict of coroutines into handlers (parses requests
  itself so malformed bytes get INVALID_ARGUMENT; maps `ServingError.code` to the status; counts
  requests in Prometheus with protocol="grpc").
- `tensors.py`: TensorProto <-> arrays, with TF's rules (typed value lists or tensor_content).
- `tfserving_service.py`: tensorflow.serving.PredictionService and ModelService.
- `client.py`: a Python client (used by `bertserve online/predict --protocol grpc` and `bench`).
"""
