"""What one training step minimises: cross-entropy (or, when distilling, cross-entropy mixed with
a teacher's soft targets), optionally with R-Drop, plus the optional FGM adversarial pass on the
word embeddings.

* Distillation (Hinton et al. 2015): per example `(1 - alpha) * CE(hard label) + alpha * T^2 *
  KL(softmax(log p_teacher / T) || softmax(student logits / T))`. The teacher's logits are its
  log-probabilities, so an ensemble's averaged probabilities work the same; T^2 keeps the soft
  term's gradients on the scale of the hard one's whatever the temperature.

* R-Drop (Liang et al. 2021): the batch goes through the model twice with different dropout; the
  loss adds `alpha` times the symmetric KL divergence between the two predicted distributions.
* FGM (Miyato et al. 2017): after the normal backward pass, the word-embedding table is moved by
  `epsilon * g / ||g||` along its gradient g, the loss is computed and back-propagated again (its
  gradients add to the normal ones), and the table is restored before the optimiser step.

Losses are sums over the examples given; the caller divides by the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SoftTargets:
    """A batch's teacher log-probabilities (batch, labels) and how much they weigh."""

    log_probabilities: torch.Tensor
    alpha: float
    temperature: float


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: SoftTargets) -> torch.Tensor:
    """Summed `(1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)` over the batch."""
    cross_entropy = F.cross_entropy(logits, labels, reduction="sum")
    temperature = soft.temperature
    teacher = F.log_softmax(soft.log_probabilities.float() / temperature, dim=-1)
    student = F.log_softmax(logits / temperature, dim=-1)
    kl = F.kl_div(student, teacher, log_target=True, reduction="sum")
    return (1 - soft.alpha) * cross_entropy + soft.alpha * temperature**2 * kl


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, soft: SoftTargets | None) -> torch.Tensor:
    """Summed cross-entropy, or the distillation loss when the batch has soft targets."""
    if soft is None:
        return F.cross_entropy(logits, labels, reduction="sum")
    return distillation_loss(logits, labels, soft)


def classification_loss(model, inputs: dict, labels: torch.Tensor, autocast_dtype, rdrop_alpha: float = 0.0,
                        soft: SoftTargets | None = None) -> torch.Tensor:
    """Summed cross-entropy of `labels` under `model` (mixed with the teacher's soft targets when
    `soft` is given; with R-Drop's KL term when `rdrop_alpha` > 0)."""
    device_type = labels.device.type
    with torch.autocast(device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        if rdrop_alpha <= 0:
            logits = model(**inputs).logits
        else:  # both dropout passes in one forward call: a batch of twice the size
            doubled = {name: torch.cat([tensor, tensor]) for name, tensor in inputs.items()}
            logits = model(**doubled).logits
    logits = logits.float()
    if rdrop_alpha <= 0:
        return supervised_loss(logits, labels, soft)
    first, second = logits.chunk(2)
    supervised = (supervised_loss(first, labels, soft) + supervised_loss(second, labels, soft)) / 2
    log_first, log_second = F.log_softmax(first, dim=-1), F.log_softmax(second, dim=-1)
    symmetric_kl = (F.kl_div(log_first, log_second, log_target=True, reduction="sum")
                    + F.kl_div(log_second, log_first, log_target=True, reduction="sum")) / 2
    return supervised + rdrop_alpha * symmetric_kl


def fgm_adversarial_backward(embeddings: torch.nn.Embedding, epsilon: float, loss_of_batch) -> None:
    """Add the gradients of the loss at word embeddings moved by `epsilon` along their gradient.
    Call after the normal `backward()`; `loss_of_batch()` recomputes the (scaled) loss."""
    table = embeddings.weight
    if table.grad is None:
        return
    norm = torch.linalg.vector_norm(table.grad)
    if not torch.isfinite(norm) or norm == 0:
        return
    saved = table.data.clone()
    table.data.add_(table.grad, alpha=epsilon / norm.item())
    try:
        loss_of_batch().backward()
    finally:
        table.data.copy_(saved)
