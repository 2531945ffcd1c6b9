"""Evaluating a run folder on labelled data: `bertserve evaluate` calls `evaluate_run`.

Besides the whole data, the report scores its leakage-free part (texts that do not also occur in
the training data) under "leakage_free", when the training texts are known: the train split of
a data folder, or a file given as `exclude_texts_of`."""

from __future__ import annotations

from pathlib import Path

from bertserve.data.datasets import load_dataset, read_file, read_texts, unseen_positions
from bertserve.errors import DataError
from bertserve.training.predict import predict_probabilities, select_device, select_precision
from bertserve.training.scores import classification_report, subset_report
from bertserve.training.run_folder import load_label_values, load_run


def evaluate_run(
    run_dir: Path,
    data: str,
    *,
    split: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "fp32",
    exclude_texts_of: str | None = None,
) -> dict:
    """Accuracy, macro-F1, per-class scores and confusion matrix of a run on `data`."""
    run = load_run(run_dir)
    path = Path(data).expanduser()
    seen_texts = None  # the training texts, where known
    if exclude_texts_of:
        seen_texts = read_texts(Path(exclude_texts_of).expanduser(), text_column=text_column, format=format)
    if path.is_file():
        examples, _, _ = read_file(path, text_column=text_column, label_column=label_column, format=format)
        split_name = "all"
    else:
        dataset = load_dataset(data, text_column=text_column, label_column=label_column, format=format)
        split_name = split or ("test" if "test" in dataset.splits else "dev")
        if split_name not in dataset.splits:
            raise DataError(f"{data}: no {split_name} split")
        examples = dataset.splits[split_name].examples
        if seen_texts is None and split_name != "train":
            seen_texts = dataset.splits["train"].texts
    # A label in the data may be the raw value the run was trained on ("0") or its name ("negative").
    lookup = {name: index for index, name in enumerate(run.labels)}
    lookup.update({raw: index for index, raw in enumerate(load_label_values(run_dir))})
    unknown = sorted({example.label for example in examples} - set(lookup))
    if unknown:
        raise DataError(f"{data}: labels {unknown[:5]} are not among the run's labels {run.labels}")
    gold = [lookup[example.label] for example in examples]
    torch_device = select_device(device)
    ids = run.tokenizer.token_ids([example.text for example in examples])
    probabilities = predict_probabilities(run.model.to(torch_device), run.tokenizer, ids, torch_device,
                                          select_precision(precision, torch_device), batch_size, progress="evaluate")
    predicted = probabilities.argmax(axis=1).tolist()
    report = classification_report(gold, predicted, run.labels)
    if seen_texts is not None:
        report["leakage_free"] = subset_report(gold, predicted, unseen_positions(examples, seen_texts), run.labels)
    return {"run": str(run_dir), "data": str(data), "split": split_name, **report}
