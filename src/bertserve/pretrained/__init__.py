"""Pretrained weights to start a fine-tune from: resolving `--pretrained` (`sources`), and Google's
TensorFlow checkpoints read without TensorFlow (`tf_checkpoint`, on `sstable` and `crc32c`);
`tf_classifier` loads one already fine-tuned by run_classifier.py, for `bertserve import-tf`."""
