"""The data a training run works on, read and tokenized once: training ids and labels, the dev and
test sets, and which test texts are leakage-free (their text does not also occur in train)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from bertserve.data.datasets import (Dataset, describe_split, fingerprint, label_counts, load_dataset, parse_label_names,
                                     unseen_positions)
from bertserve.tokenizer import TextTokenizer
from bertserve.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    ids: list[list[int]]
    gold: list[int]
    leakage_free: list[int] | None = None  # positions whose text does not occur in train (the test split only)
    texts: list[str] = field(default_factory=list)  # the raw texts, for teachers with their own tokenizer


@dataclass
class TrainingData:
    dataset: Dataset
    train_ids: list[list[int]]
    train_gold: list[int]
    eval_sets: dict[str, EvalSet]  # "dev" and "test", where the data has them
    train_texts: list[str] = field(default_factory=list)  # the raw texts of train_ids, in the same order

    @property
    def label_names(self) -> list[str]:
        return self.dataset.label_names

    def report(self) -> dict:
        """What goes into the run folder's data.json."""
        splits = self.dataset.splits
        report = {**self.dataset.summary(), "train_used": len(self.train_ids),
                  "fingerprints": {name: fingerprint(split) for name, split in splits.items()},
                  "label_counts": {name: label_counts(split) for name, split in splits.items()}}
        test = self.eval_sets.get("test")
        if test is not None and test.leakage_free is not None:
            report["test_leakage_free_examples"] = len(test.leakage_free)
        return report

    def log_summary(self) -> None:
        names = dict(zip(self.dataset.labels, self.dataset.label_names))
        for split in self.dataset.splits.values():
            log.info("data %s", describe_split(split, names))
        test = self.eval_sets.get("test")
        if test is not None and test.leakage_free is not None:
            log.info("data test: %d of %d texts also occur in train; the other %d make the leakage-free test set",
                     len(test.gold) - len(test.leakage_free), len(test.gold), len(test.leakage_free))


def load_training_data(config: TrainConfig, tokenizer: TextTokenizer) -> TrainingData:
    """Read, sample (--max-train-examples, --max-eval-examples) and tokenize the data of `config`."""
    dataset = load_dataset(config.data, text_column=config.text_column, label_column=config.label_column,
                           format=config.data_format, label_names=parse_label_names(config.label_names), seed=config.seed)
    label_index = {label: index for index, label in enumerate(dataset.labels)}
    train_examples = list(dataset.splits["train"].examples)
    if config.max_train_examples and config.max_train_examples < len(train_examples):
        random.Random(config.seed).shuffle(train_examples)
        train_examples = train_examples[: config.max_train_examples]
    eval_sets = {}
    for split in ("dev", "test"):
        if split not in dataset.splits:
            continue
        examples = dataset.splits[split].examples
        if config.max_eval_examples and config.max_eval_examples < len(examples):
            # A seeded sample, not the head: files are often sorted by label.
            keep = sorted(random.Random(config.seed).sample(range(len(examples)), config.max_eval_examples))
            examples = [examples[index] for index in keep]
        leakage_free = unseen_positions(examples, dataset.splits["train"].texts) if split == "test" else None
        texts = [example.text for example in examples]
        eval_sets[split] = EvalSet(tokenizer.token_ids(texts), [label_index[example.label] for example in examples],
                                   leakage_free, texts)
    train_texts = [example.text for example in train_examples]
    return TrainingData(dataset, tokenizer.token_ids(train_texts), [label_index[example.label] for example in train_examples],
                        eval_sets, train_texts)
