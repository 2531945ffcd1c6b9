"""The file names inside a run folder and an exported version folder, defined once.

A run folder (written by `bertserve train`):
    config.json  data.json  environment.json  labels.json  history.jsonl  metrics.json  model_card.md
    model/model.safetensors (+ the model's config.json)   tokenizer/   checkpoint/ (while training)

A version folder (written by `bertserve export`, read by `bertserve serve`):
    model.xml + model.bin (OpenVINO) or model.onnx   tokenizer/   labels.json   signature.json
    model_card.md   export_config.json   manifest.json
  or, for an ensemble, members/0/, members/1/, ... (each: the model file(s) + export_config.json)
  in place of the model file(s).
  An OpenVINO int8 export made with `--fp32-variant` also holds variants/fp32/model.xml + model.bin:
  the same model unquantised, which the server runs instead where it measures faster (CPUs without
  int8 dot-product instructions).

Every module that reads or writes one of these names imports it from here.
"""

from __future__ import annotations

# Shared by both folders.
TOKENIZER_DIR = "tokenizer"
LABELS_FILE = "labels.json"
MODEL_CARD_FILE = "model_card.md"

# Run folder.
CONFIG_FILE = "config.json"
DATA_REPORT_FILE = "data.json"
ENVIRONMENT_FILE = "environment.json"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
MODEL_DIR = "model"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_DIR = "checkpoint"
PROGRESS_FILE = "progress.json"
# A several-seed run (`bertserve train --seeds 3`): RUN/seed-42/ ... are run folders, plus the summary.
SEED_RUN_PREFIX = "seed-"
SEEDS_SUMMARY_FILE = "seeds_summary.json"

# Version folder.
ONNX_MODEL_FILE = "model.onnx"
OPENVINO_MODEL_FILE = "model.xml"
OPENVINO_WEIGHTS_FILE = "model.bin"
SIGNATURE_FILE = "signature.json"
EXPORT_CONFIG_FILE = "export_config.json"
MANIFEST_FILE = "manifest.json"
MEMBERS_DIR = "members"  # ensemble versions: members/<index>/ holds one member's model and export_config.json
VARIANTS_DIR = "variants"  # variants/<name>/model.xml + model.bin: the same model at another precision
FP32_VARIANT = "fp32"

# Tokenizer folder (inside both).
VOCAB_FILE = "vocab.txt"  # WordPiece
TOKENIZER_NORMALIZATION_FILE = "normalization.json"  # unigram: the character map and the special ids
TOKENIZER_JSON_FILE = "tokenizer.json"
TOKENIZER_SETTINGS_FILE = "tokenizer_settings.json"
