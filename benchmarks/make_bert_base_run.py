"""Make a run folder holding a BERT-base-shaped classifier with random weights, for the latency
and cold-start benchmarks: the config of Google's chinese_L-12_H-768_A-12 (12 layers, hidden 768,
12 heads, intermediate 3072, 512 positions, 21,128-token vocabulary), labels negative/positive,
the Chinese vocabulary of m3e-small (the same 21,128 tokens). Random weights time exactly like
trained ones; the predictions mean nothing.

    .venv/bin/python benchmarks/make_bert_base_run.py --output $WORK/bert-base-run
    .venv/bin/python -m bertserve export --run $WORK/bert-base-run --base-path $WORK/models/bert-base --version 1

The folder (~410 MB of safetensors) is written where you say, never into the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# chinese_L-12_H-768_A-12/bert_config.json, in Hugging Face's names.
BERT_BASE_CHINESE = {
    "vocab_size": 21128,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}
LABELS = ["negative", "positive"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="run folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seq-length", type=int, default=128, help="tokenizer truncation (default: 128)")
    args = parser.parse_args(argv)
    if args.output.exists():
        print(f"make_bert_base_run: {args.output} exists; give a new folder", file=sys.stderr)
        return 2

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from bertserve.pretrained.sources import load_tokenizer, resolve
    from bertserve.training.run_folder import save_model

    tokenizer = load_tokenizer(resolve("m3e-small"), max_seq_length=args.max_seq_length)
    if tokenizer.vocab_size != BERT_BASE_CHINESE["vocab_size"]:
        print(f"make_bert_base_run: m3e-small's vocabulary has {tokenizer.vocab_size} tokens, expected 21128", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    config = BertConfig(
        **BERT_BASE_CHINESE,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config).eval()
    save_model(args.output, model, tokenizer, LABELS)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(f"wrote {args.output}: BERT-base shape, {parameters / 1e6:.1f}M parameters, random weights (seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
