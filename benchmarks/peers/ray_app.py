"""The real serving peer: Ray Serve with its own dynamic batching (`@serve.batch`), serving the
same export as bertserve with the same engine (`peer_engine.py`: OpenVINO for the default
export, ONNX Runtime for a model.onnx; all cores, same precision), so the comparison measures the
serving stack and its batching, not the model. Runs only in the isolated venv made by
`setup_peer_venv.sh` (Ray pins its own pydantic, protobuf, ...).

    .bench/venv/bin/python benchmarks/peers/ray_app.py --export models/m/1 --port 8700 [--precision fp32]
    curl -d '{"instances": ["很好"]}' http://127.0.0.1:8700/predict

`bertserve bench --peers ray --engine-dir models/m/1` starts it. Tuned as Ray's batching guide
says: max_ongoing_requests well above max_batch_size (the default, 5, caps every batch at 5).
"""

import argparse
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

import ray
from ray import serve
from starlette.requests import Request

sys.path.insert(0, str(Path(__file__).resolve().parent))  # peer_engine.py, also inside Ray's worker
from peer_engine import PeerEngine  # noqa: E402


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class Classifier:
    def __init__(self, export_dir: str, threads: int, max_batch_size: int, precision: str | None):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        self.predict_batch.set_max_batch_size(max_batch_size)  # bench's --max-batch-size, like bertserve's
        self.engine = PeerEngine(export_dir, precision=precision, threads=threads)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001)
    async def predict_batch(self, texts: list[str]) -> list[list[float]]:
        return self.engine.predict(texts)

    async def __call__(self, request: Request) -> dict:
        texts = (await request.json())["instances"]
        return {"predictions": list(await asyncio.gather(*(self.predict_batch(text) for text in texts)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="bertserve export version folder (model.onnx + tokenizer/)")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=("fp32", "bf16", "default"), default=None,
                        help="OpenVINO inference precision (default: the export's recorded one)")
    args = parser.parse_args()
    # The workers must find peer_engine.py beside this script.
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent)}})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    deployment = Classifier.options(name="classifier")
    app = deployment.bind(str(Path(args.export).resolve()), os.cpu_count() or 1, args.max_batch_size, args.precision)
    serve.run(app, route_prefix="/predict")
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
