"""The model the peer servers run: the same export bertserve serves, with the same engine, so a
side-by-side comparison measures the serving stack and its batching, not the model.

    engine = PeerEngine("models/m/1", precision="fp32")
    engine.predict(["很好", "太差了"])        # [[p_negative, p_positive], ...]

OpenVINO IR (model.xml, the default export) runs on OpenVINO with the LATENCY hint on every core
and the inference precision given (bertserve chooses its own at load: pass the one it reports in
GET /v1/models/NAME/metadata, `bertserve.engine.precision`; benchmarks/issue10.py does). A plain
model.onnx runs on ONNX Runtime. Texts are tokenized with the export's own tokenizer.json,
truncated to the signature's max_seq_length and padded to the longest text of each batch, as
bertserve does (head+tail truncation too, when the export's tokenizer_settings.json asks for it:
a quarter of the budget from the start, the rest from the end). Imported by ray_app.py and litserve_app.py from the isolated peer venv, so it
must not import bertserve or torch.
"""

import json
import os
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

PRECISIONS = {"fp32": "f32", "bf16": "bf16", "default": None}


class PeerEngine:
    def __init__(self, export_dir, precision=None, threads=None):
        export_dir = Path(export_dir)
        threads = threads or os.cpu_count() or 1
        signature = json.loads((export_dir / "signature.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer" / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_length = int(signature["max_seq_length"])
        settings_file = export_dir / "tokenizer" / "tokenizer_settings.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
        self.head_and_tail = settings.get("truncation", "head") == "head+tail"
        self.cls_id, self.sep_id = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        if (export_dir / "model.xml").is_file():
            import openvino

            if precision is None:
                config = json.loads((export_dir / "export_config.json").read_text(encoding="utf-8"))
                precision = config.get("engine", {}).get("inference_precision", "fp32")
            settings = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
            if PRECISIONS[precision] is not None:
                settings["INFERENCE_PRECISION_HINT"] = PRECISIONS[precision]
            compiled = openvino.Core().compile_model(str(export_dir / "model.xml"), "CPU", settings)
            self.input_names = [port.get_any_name() for port in compiled.inputs]
            self.request = compiled.create_infer_request()
            self.description = f"OpenVINO {precision}, {threads} threads"
            self._run = self._run_openvino
        else:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads  # Ray sets OMP_NUM_THREADS=1 in actors; ask for all cores
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as bertserve
            self.session = onnxruntime.InferenceSession(str(export_dir / "model.onnx"), options,
                                                        providers=["CPUExecutionProvider"])
            self.input_names = [node.name for node in self.session.get_inputs()]
            self.description = f"ONNX Runtime, {threads} threads"
            self._run = self._run_onnxruntime

    def _run_openvino(self, feed):
        self.request.infer(feed)
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def _run_onnxruntime(self, feed):
        return self.session.run(None, feed)[0]

    def predict(self, texts):
        """Probabilities, one list per text."""
        budget = self.max_length - 2
        rows = []
        for encoding in self.tokenizer.encode_batch(list(texts), add_special_tokens=False):
            tokens = encoding.ids
            if len(tokens) > budget:
                head = budget // 4 if self.head_and_tail else budget
                tokens = tokens[:head] + tokens[len(tokens) - (budget - head):] if head < budget else tokens[:budget]
            rows.append([self.cls_id, *tokens, self.sep_id])
        longest = max(len(row) for row in rows)
        ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for index, row in enumerate(rows):
            ids[index, :len(row)] = row
            mask[index, :len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = np.asarray(self._run({name: feed[name] for name in self.input_names}), dtype=np.float32)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).tolist()
