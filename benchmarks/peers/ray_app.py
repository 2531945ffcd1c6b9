"""The real serving peer: Ray Serve with its own dynamic batching (`@serve.batch`), serving the
same ONNX export as bertserve with the same engine (ONNX Runtime, all cores, same graph), so the
comparison measures the serving stack and its batching, not the model. Runs only in the isolated
venv made by `setup_peer_venv.sh` (Ray pins its own pydantic, protobuf, ...).

    .bench/venv/bin/python benchmarks/peers/ray_app.py --export models/m/1 --port 8700
    curl -d '{"instances": ["很好"]}' http://127.0.0.1:8700/predict

`bertserve bench --peers ray --engine-dir models/m/1` starts it. Tuned as Ray's batching guide
says: max_ongoing_requests well above max_batch_size (the default, 5, caps every batch at 5).
"""

import argparse
import asyncio
import os
import signal
import threading
from pathlib import Path

import numpy as np
import onnxruntime
import ray
from ray import serve
from starlette.requests import Request
from tokenizers import Tokenizer


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class Classifier:
    def __init__(self, export_dir: str, threads: int, max_batch_size: int):
        self.predict_batch.set_max_batch_size(max_batch_size)  # bench's --max-batch-size, like bertserve's
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # Ray sets OMP_NUM_THREADS=1 in actors; ask for all cores
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(Path(export_dir) / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(Path(export_dir) / "tokenizer" / "tokenizer.json"))
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad each batch to its longest text

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001)
    async def predict_batch(self, texts: list[str]) -> list[list[float]]:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}
        logits = self.session.run(None, {name: feed[name] for name in self.input_names})[0]
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).tolist()

    async def __call__(self, request: Request) -> dict:
        texts = (await request.json())["instances"]
        return {"predictions": list(await asyncio.gather(*(self.predict_batch(text) for text in texts)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="bertserve export version folder (model.onnx + tokenizer/)")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--max-batch-size", type=int, default=32)
    args = parser.parse_args()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    deployment = Classifier.options(name="classifier")
    app = deployment.bind(str(Path(args.export).resolve()), os.cpu_count() or 1, args.max_batch_size)
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
