"""Does a reduced-precision export (int8, bf16) keep the run's dev accuracy? Measure, recover, report.

`bertserve export` runs the fp32 graph and the exported graph on the run's own dev split
(`bertserve.export.dev_split`) and compares their accuracies. The bound is
`DEFAULT_MAX_ACCURACY_DROP` points (`--max-accuracy-drop`): the int8 default was chosen because it
kept dev accuracy within half a point of fp32 on our fine-tuned model (94.33 vs 94.17,
docs/benchmarks.md "Engines"), so more than that means this model needs attention.

Over the bound, `recover` (for OpenVINO static int8: NNCF's `quantize_with_accuracy_control`,
which puts the most sensitive layers back in fp32 until the drop is within the bound, on a bounded
subset of the dev texts and steps, see `bertserve.export.graph`) gets one try; the verdict is then
measured on the whole split again. Still over: a WARNING line with both numbers and `"accuracy_within_bound": false` in
export_config.json, or, with `--strict-accuracy`, an `ExportError` and no version folder.
A run without labelled dev data skips the check with one INFO line.

Accuracies are fractions (like metrics.json); drops and the bound are accuracy points (percent).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from bertserve.errors import ExportError
from bertserve.export.dev_split import DevSplit
from bertserve.tokenizer import TextTokenizer

logger = logging.getLogger(__name__)

DEFAULT_MAX_ACCURACY_DROP = 0.5  # accuracy points (percent) the exported model may lose against fp32
BATCH_SIZE = 32  # dev texts per engine call, sorted by length so little padding is computed


def dev_accuracy(engine: Any, tokenizer: TextTokenizer, dev: DevSplit) -> float:
    """Fraction of dev texts whose argmax class from `engine` (logits) is the gold one."""
    if not dev.label_ids:
        raise ExportError("the dev split has no labels to measure accuracy with")
    order = sorted(range(len(dev)), key=lambda index: len(dev.texts[index]))
    correct = 0
    for start in range(0, len(order), BATCH_SIZE):
        chunk = order[start:start + BATCH_SIZE]
        encoded = tokenizer.encode([dev.texts[index] for index in chunk]).as_dict()
        logits = engine.run({name: value for name, value in encoded.items() if name in engine.input_names})
        correct += int(np.sum(np.argmax(logits, axis=-1) == np.asarray([dev.label_ids[index] for index in chunk])))
    return correct / len(dev)


def drop_points(fp32: float, exported: float) -> float:
    return round((fp32 - exported) * 100, 4)


def check_accuracy(
    kind: str,
    reference: Any,
    load_exported: Callable[[], Any],
    recover: Callable[[], str] | None,
    tokenizer: TextTokenizer,
    dev: DevSplit | None,
    max_drop: float,
    strict: bool,
) -> dict[str, Any]:
    """Compare `reference` (the fp32 engine) with the engine `load_exported()` returns on `dev`;
    return the facts for export_config.json. `kind` names the precision ("int8", "bf16")."""
    if dev is None or not dev.label_ids:
        logger.info("the run has no labelled dev data; skipping the %s dev accuracy check", kind)
        return {"accuracy_check": "skipped: the run has no labelled dev data"}
    fp32 = dev_accuracy(reference, tokenizer, dev)
    exported = dev_accuracy(load_exported(), tokenizer, dev)
    facts: dict[str, Any] = {
        "accuracy_check": f"{kind} vs fp32 on the run's dev split",
        "dev_source": dev.source,
        "dev_texts": len(dev),
        "fp32_dev_accuracy": fp32,
        "max_accuracy_drop_points": max_drop,
        "accuracy_recovery": None,
    }
    if drop_points(fp32, exported) > max_drop and recover is not None:
        logger.info("%s dev accuracy %.2f%% vs fp32 %.2f%%: over the %.2f-point bound; trying to recover it",
                    kind, exported * 100, fp32 * 100, max_drop)
        facts["exported_dev_accuracy_before_recovery"] = exported
        facts["accuracy_recovery"] = recover()
        exported = dev_accuracy(load_exported(), tokenizer, dev)
    drop = drop_points(fp32, exported)
    facts |= {"exported_dev_accuracy": exported, "accuracy_drop_points": drop, "accuracy_within_bound": drop <= max_drop}
    if drop <= max_drop:
        logger.info("%s dev accuracy %.2f%% vs fp32 %.2f%% on %d dev texts (drop %.2f points, bound %.2f)",
                    kind, exported * 100, fp32 * 100, len(dev), drop, max_drop)
        return facts
    message = (f"{kind} dev accuracy {exported * 100:.2f}% is {drop:.2f} points below fp32 {fp32 * 100:.2f}% "
               f"on {len(dev)} dev texts, over the bound of {max_drop:.2f} (--max-accuracy-drop)")
    if strict:
        raise ExportError(f"{message}; nothing exported (--strict-accuracy). Try --quantize none or more --calibration-data")
    logger.warning("%s; exported anyway (export_config.json: accuracy_within_bound false)", message)
    return facts
