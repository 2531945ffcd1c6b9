"""Parity between the trained torch model and an exported graph: the texts, the bounds, the measure.

Every graph `bertserve export` writes is run on `PARITY_TEXTS` and compared with the torch model;
the largest |probability difference| must stay within `FP32_TOLERANCE` (fp32) or
`REDUCED_TOLERANCE` (bf16, int8). Parity catches a broken graph; whether reduced precision keeps
accuracy is measured on the run's dev split (`bertserve.export.accuracy`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertserve.inference.model import softmax

# Largest |probability difference| allowed between the torch model and an fp32 graph.
FP32_TOLERANCE = 1e-4
# The same for OpenVINO bf16 and static int8: bf16 keeps ~3 significant digits and int8
# activations are rounded to 1/255 of their calibrated range, so probabilities move by up to a
# few hundredths; more than this means a broken graph, not rounding.
REDUCED_TOLERANCE = 0.1
# Varied lengths, punctuation, Latin, digits, emoji and [UNK]s: the batch that traces the graph and
# checks parity. Padding inside the batch exercises the attention mask.
PARITY_TEXTS = (
    "很好",
    "太差了",
    "房间干净，服务热情，下次还来！",
    "这本书写得一般般，不推荐购买。",
    "酒店位置不错，但是隔音太差，晚上根本睡不着觉。",
    "性价比高",
    "Wi-Fi 信号很弱，速度只有 1Mbps。",
    "价格￥399，物有所值😀",
    "不好",
    "送货很快，包装完好，电脑运行流畅，屏幕显示效果也很清晰，总体来说非常满意。",
    "呵呵",
    "早餐种类少，味道也一般；前台态度冷淡。",
    "THE BEST hotel in Beijing!!!",
    "一般",
    "我买的是黑色款，收到的却是白色款，联系客服也没人回复，非常失望……",
    "第二次入住了，依然满意。",
    "？？？",
    "电池续航只有两个小时，和宣传的八小时差距太大。",
    "好" * 60,
    "環境優美，交通便利",
)


def torch_probabilities(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = model(**{name: torch.from_numpy(value) for name, value in inputs.items()}).logits
    return softmax(logits.float().numpy())


def max_difference(engine: Any, inputs: dict[str, np.ndarray], expected: np.ndarray) -> float:
    """max |p_engine - expected| over the batch `inputs` (an engine returns logits)."""
    return float(np.abs(softmax(engine.run(inputs)) - expected).max())
