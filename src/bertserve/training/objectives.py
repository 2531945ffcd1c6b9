"""What one training step minimises: cross-entropy, optionally with R-Drop, plus the optional
FGM adversarial pass on the word embeddings.

* R-Drop (Liang et al. 2021): the batch goes through the model twice with different dropout; the
  loss adds `alpha` times the symmetric KL divergence between the two predicted distributions.
* FGM (Miyato et al. 2017): after the normal backward pass, the word-embedding table is moved by
  `epsilon * g / ||g||` along its gradient g, the loss is computed and back-propagated again (its
  gradients add to the normal ones), and the table is restored before the optimiser step.

Losses are sums over the examples given; the caller divides by the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(model, inputs: dict, labels: torch.Tensor, autocast_dtype, rdrop_alpha: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy of `labels` under `model` (with R-Drop's KL term when `rdrop_alpha` > 0)."""
    device_type = labels.device.type
    with torch.autocast(device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        if rdrop_alpha <= 0:
            logits = model(**inputs).logits
        else:  # both dropout passes in one forward call: a batch of twice the size
            doubled = {name: torch.cat([tensor, tensor]) for name, tensor in inputs.items()}
            logits = model(**doubled).logits
    logits = logits.float()
    if rdrop_alpha <= 0:
        return F.cross_entropy(logits, labels, reduction="sum")
    first, second = logits.chunk(2)
    cross_entropy = (F.cross_entropy(first, labels, reduction="sum") + F.cross_entropy(second, labels, reduction="sum")) / 2
    log_first, log_second = F.log_softmax(first, dim=-1), F.log_softmax(second, dim=-1)
    symmetric_kl = (F.kl_div(log_first, log_second, log_target=True, reduction="sum")
                    + F.kl_div(log_second, log_first, log_target=True, reduction="sum")) / 2
    return cross_entropy + rdrop_alpha * symmetric_kl


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
