"""The TensorFlow-Serving-compatible model server behind `bertserve serve`.

Lifecycle (a source polls BASE/<version>/, a loader loads one, the manager swaps versions):
`manager.py`; dynamic batching: `batching.py`; Prometheus metrics: `metrics.py`; the process
(uvicorn, health, SIGTERM drain): `server.py`. The REST contract: `tfserving.py` + `app.py`.
"""
