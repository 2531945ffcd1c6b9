"""The naive peer: what a user would write instead of bertserve. A Hugging Face
`pipeline("text-classification")` on a run folder's torch model behind a minimal FastAPI app.

    .venv/bin/python benchmarks/peers/naive_app.py --run runs/chnsenticorp-a --port 8600
    curl -d '{"instances": ["很好"]}' http://127.0.0.1:8600/predict

`bertserve bench --peers naive --run RUN` starts it. It answers TF Serving's row format so the
load generator sends every server the same bytes. Nothing is tuned on purpose: one pipeline call
per request, run by FastAPI in its thread pool, torch's default threads.
"""

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from transformers import AutoModelForSequenceClassification, BertTokenizerFast, pipeline

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--run", required=True, type=Path, help="bertserve run folder (model/ + tokenizer/)")
parser.add_argument("--port", type=int, default=8600)
args = parser.parse_args()

model = AutoModelForSequenceClassification.from_pretrained(args.run / "model", use_safetensors=True)
tokenizer = BertTokenizerFast(vocab_file=str(args.run / "tokenizer" / "vocab.txt"), do_lower_case=True)
classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, top_k=None,
                      truncation=True, max_length=128)
labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
app = FastAPI()


@app.post("/predict")
def predict(body: dict) -> dict:
    results = classifier(body["instances"])
    return {"predictions": [[next(r["score"] for r in scores if r["label"] == label) for label in labels]
                            for scores in results]}


uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
