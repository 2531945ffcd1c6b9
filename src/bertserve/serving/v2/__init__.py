"""The Open Inference Protocol (KServe V2, Triton's HTTP/gRPC API) beside TF Serving's API.

`tensors.py` decodes and encodes V2 tensors (typed or raw), `model_io.py` says what a bertserve
model takes and gives (metadata, inputs -> the servable's batcher -> outputs), both shared by
REST (`rest.py`, with Triton's binary tensor data extension in `binary.py`) and gRPC
(`serving/grpc/v2_service.py`). `client.py` is the V2 REST client behind `--protocol v2`.
"""
