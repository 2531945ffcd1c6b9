"""bertserve: train, ship and serve BERT text classifiers.

The `bertserve` command (`bertserve COMMAND --help` explains each one with examples):

    train     fine-tune a BERT classifier on labelled text (TSV/CSV/JSONL) into a run folder
    evaluate  accuracy, macro-F1, per-class scores and the confusion matrix of a run
    export    a run -> a servable version folder BASE/<version>/ (OpenVINO int8 by default, or ONNX)
    import-tf the 2019 demo's TF checkpoint (run_classifier.py) -> the same version folder, no TF needed
    serve     the TF-Serving-compatible model server (hot reload, batching, metrics, drain)
    online    the interactive client: a sentence in, each label's probability out
    predict   label every row of a file, in-process or through a server
    ray       `serve` as several Ray Serve replicas behind Ray's HTTP proxy
    bench     load-test a server against the engine in-process and peer servers

The folders under this package name the concepts (README.md, "What's where"); the arrows between
them flow one way: commands -> serving/export/training/bench -> inference/data/pretrained -> the
top-level modules (errors, layout, files, tokenizer, client).
"""

__version__ = "0.1.0"
