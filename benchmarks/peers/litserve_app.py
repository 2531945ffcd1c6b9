"""The LitServe peer: Lightning AI's LitServe with its own dynamic batching (`max_batch_size`,
`batch_timeout`), serving the same export as bertserve with the same engine (`peer_engine.py`),
so the comparison measures the serving stack and its batching, not the model. Runs only in the
isolated venv made by `setup_peer_venv.sh`.

    .bench/venv/bin/python benchmarks/peers/litserve_app.py --export models/m/1 --port 8800 [--precision fp32]
    curl -d '{"instances": ["很好"]}' http://127.0.0.1:8800/predict

`bertserve bench --peers litserve --engine-dir models/m/1` starts it. As LitServe's batching
guide shows: one worker, batches of up to --max-batch-size requests, a 1 ms batch timeout (the
same as the Ray peer's). Each request carries `{"instances": [...]}` (the load generator sends one
text per request); a batch is every instance of the requests LitServe gathered.
"""

import argparse
import inspect
import sys
from pathlib import Path

import litserve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_engine import PeerEngine  # noqa: E402


class Classifier(litserve.LitAPI):
    def __init__(self, export_dir, precision, batching):
        # LitServe 0.2.x moved the batching knobs from LitServer to LitAPI; older ones take them on LitServer.
        if batching:
            super().__init__(**batching)
        else:
            super().__init__()
        self.export_dir, self.precision = export_dir, precision

    def setup(self, device):
        self.engine = PeerEngine(self.export_dir, precision=self.precision)

    def decode_request(self, request):
        return list(request["instances"])

    def batch(self, inputs):
        return inputs  # a list of per-request lists of texts

    def predict(self, batch):
        texts = [text for request in batch for text in request]
        probabilities = self.engine.predict(texts)
        answers, start = [], 0
        for request in batch:
            answers.append(probabilities[start:start + len(request)])
            start += len(request)
        return answers

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        return {"predictions": output}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="bertserve export version folder (model.xml or model.onnx + tokenizer/)")
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=("fp32", "bf16", "default"), default=None,
                        help="OpenVINO inference precision (default: the export's recorded one)")
    args = parser.parse_args()
    batching = {"max_batch_size": args.max_batch_size, "batch_timeout": 0.001}
    on_api = "max_batch_size" in inspect.signature(litserve.LitAPI.__init__).parameters
    api = Classifier(str(Path(args.export).resolve()), args.precision, batching if on_api else None)
    server = litserve.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=60,
                                **({} if on_api else batching))
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
