"""Torch-side prediction shared by the training loop and `bertserve evaluate`: which device and
precision to run on, and class probabilities for a list of tokenized texts, batched by length."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertserve.errors import ConfigError
from bertserve.tokenizer import TextTokenizer


def select_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is visible to torch")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 matrix work beats fp32."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None) or getattr(torch._C._cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            pass
    return False


def select_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if requested == "fp32":
        return None
    if requested == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def to_tensors(tokenizer: TextTokenizer, id_lists: Sequence[Sequence[int]], device: torch.device) -> dict[str, torch.Tensor]:
    encoded = tokenizer.pad(id_lists)
    return {name: torch.from_numpy(array).to(device) for name, array in encoded.as_dict().items()}


@torch.inference_mode()
def predict_probabilities(
    model,
    tokenizer: TextTokenizer,
    id_lists: Sequence[Sequence[int]],
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    batch_size: int = 64,
    progress: str | None = None,
) -> np.ndarray:
    """Class probabilities for pre-tokenized inputs, batched by length; returned in input order."""
    model.eval()
    order = sorted(range(len(id_lists)), key=lambda index: len(id_lists[index]))
    result = np.zeros((len(id_lists), model.config.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc=progress, disable=None if progress else True, leave=False):
        rows = order[start : start + batch_size]
        inputs = to_tensors(tokenizer, [id_lists[row] for row in rows], device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            logits = model(**inputs).logits
        result[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return result


