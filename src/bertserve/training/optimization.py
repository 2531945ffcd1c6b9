"""Optimiser and learning-rate schedule for fine-tuning: AdamW with weight decay off for biases and
LayerNorm weights, optional layer-wise learning-rate decay, linear warm-up then linear decay to 0."""

from __future__ import annotations

import re
from functools import partial

import torch

from bertserve.training.config import TrainConfig

NO_WEIGHT_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layernorm", "layer_norm")
_ENCODER_LAYER = re.compile(r"\.layer\.(\d+)\.")


def layer_depth(parameter_name: str, layers: int) -> int:
    """0 for the embeddings, k for encoder layer k-1, layers + 1 for the pooler and classifier."""
    if "embeddings." in parameter_name:
        return 0
    match = _ENCODER_LAYER.search(parameter_name)
    if match:
        return int(match.group(1)) + 1
    return layers + 1


def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """One AdamW group per (depth, decayed or not). With `layer_lr_decay` d < 1, a parameter at depth k
    learns at lr * d**(top - k): the classifier at the full rate, the embeddings the slowest
    (the lower layers hold the general language knowledge worth keeping)."""
    layers = int(getattr(model.config, "num_hidden_layers", 0))
    top = layers + 1
    groups: dict[tuple[int, int], dict] = {}
    for name, parameter in model.named_parameters():
        depth = layer_depth(name, layers) if config.layer_lr_decay < 1 else top
        decayed = not any(key in name for key in NO_WEIGHT_DECAY)
        group = groups.setdefault((depth, 0 if decayed else 1), {
            "params": [], "weight_decay": config.weight_decay if decayed else 0.0,
            "lr": config.learning_rate * config.layer_lr_decay ** (top - depth)})
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


def build_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # The fused kernel updates all parameters in one pass; the default per-tensor loop spent ~20 % of
    # each m3e-small step here (its 10.8M-parameter embedding table dominates).
    return torch.optim.AdamW(parameter_groups(model, config), lr=config.learning_rate,
                             fused=device.type in ("cpu", "cuda"))


def warmup_then_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate multiplier at `step`: rises linearly to 1 over the warm-up, then falls
    linearly to 0 at the last step."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def build_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup_steps = int(total_steps * warmup_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(warmup_then_linear_decay, warmup_steps=warmup_steps, total_steps=total_steps))
