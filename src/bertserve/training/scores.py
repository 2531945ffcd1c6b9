"""Classification metrics as pure functions: accuracy, macro-F1, per-class P/R/F1, confusion."""

from __future__ import annotations

from typing import Sequence


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int], num_classes: int) -> list[list[int]]:
    """matrix[true][predicted] counts."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for true, guess in zip(gold, predicted):
        matrix[true][guess] += 1
    return matrix


def classification_report(gold: Sequence[int], predicted: Sequence[int], label_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    matrix = confusion_matrix(gold, predicted, len(label_names))
    per_class = {}
    f1_scores = []
    for index, name in enumerate(label_names):
        true_positive = matrix[index][index]
        predicted_count = sum(row[index] for row in matrix)
        support = sum(matrix[index])
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        f1_scores.append(f1)
    total = len(gold)
    correct = sum(matrix[index][index] for index in range(len(label_names)))
    return {
        "examples": total,
        "accuracy": correct / total if total else 0.0,
        "macro_f1": sum(f1_scores) / len(f1_scores) if f1_scores else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix,
        "labels": list(label_names),
    }


def format_report(report: dict) -> str:
    """A human-readable table of `classification_report`'s output."""
    lines = [
        f"examples {report['examples']}  accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}",
        f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name, values in report["per_class"].items():
        lines.append(
            f"{name:<16}{values['precision']:>10.4f}{values['recall']:>10.4f}{values['f1']:>10.4f}{values['support']:>10}"
        )
    labels = report["labels"]
    width = max(8, *(len(label) + 2 for label in labels))
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(" " * 16 + "".join(f"{label:>{width}}" for label in labels))
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{label:<16}" + "".join(f"{count:>{width}}" for count in row))
    return "\n".join(lines)


def subset_report(gold: Sequence[int], predicted: Sequence[int], positions: Sequence[int], label_names: Sequence[str]) -> dict:
    """`classification_report` of the examples at `positions` (e.g. the leakage-free test texts);
    with no examples there, accuracy and macro-F1 are None rather than a misleading 0."""
    if not positions:
        return {"examples": 0, "accuracy": None, "macro_f1": None}
    return classification_report([gold[i] for i in positions], [predicted[i] for i in positions], label_names)
