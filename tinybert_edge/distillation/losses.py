"""TinyBERT distillation loss terms, one function each (Jiao et al., 2020, section 3.1).

Every term returns a scalar tensor averaged the same way the formula in its docstring says, so the golden-value
tests in tests/unit/test_losses.py can recompute each one by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor, projection: torch.nn.Module | None = None) -> torch.Tensor:
    """L_embd = MSE(E^S W_e, E^T)  (eq. 9): mean over batch, positions and teacher width.

    `projection` is W_e (student width -> teacher width); None when the widths are equal.
    """
    return F.mse_loss(student if projection is None else projection(student), teacher)


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, projection: torch.nn.Module | None = None) -> torch.Tensor:
    """L_hidn = MSE(H^S W_h, H^T)  (eq. 8) for one mapped layer: mean over batch, positions and teacher width."""
    return F.mse_loss(student if projection is None else projection(student), teacher)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """L_attn = (1/h) sum_i MSE(A_i^S, A_i^T)  (eq. 7) on pre-softmax scores A = Q K^T / sqrt(d_k).

    Scores are [batch, heads, query, key]; only entries whose query and key are both real tokens count
    (`attention_mask` [batch, seq], 1 = token, 0 = padding), so padding never contributes.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"attention scores differ in shape: student {tuple(student.shape)}, teacher {tuple(teacher.shape)}")
    # In fp32 whatever the scores' dtype: under bf16 autocast a bf16 sum over every score pair loses the loss's
    # low digits (and with them the gradient's scale).
    student, teacher = student.float(), teacher.float()
    valid = attention_mask.to(student.dtype)
    pair_mask = (valid[:, None, :, None] * valid[:, None, None, :]).expand_as(student)
    # Select rather than multiply: padded scores may be -inf or dtype-min (an additive mask), and inf * 0 is NaN.
    difference = torch.where(pair_mask.bool(), student - teacher, torch.zeros_like(student))
    return difference.pow(2).sum() / pair_mask.sum().clamp_min(1.0)


def _relations(states: torch.Tensor, heads: int, key_mask: torch.Tensor) -> torch.Tensor:
    """log softmax(X_a X_a^T / sqrt(d_r)) per relation head a, with padded keys excluded: [batch, heads, seq, seq]."""
    batch, seq, width = states.shape
    if width % heads:
        raise ValueError(f"width {width} is not divisible by {heads} relation heads; choose relation_heads dividing it")
    size = width // heads
    split = states.view(batch, seq, heads, size).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) / size**0.5
    scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def relation_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], attention_mask: torch.Tensor,
                  heads: int = 12) -> torch.Tensor:
    """L_rel = sum_{x in Q,K,V} KL(R_x^T || R_x^S), R_x = softmax(X X^T / sqrt(d_r)) per relation head (MiniLMv2).

    `student`/`teacher` map "query", "key", "value" to one layer's projections [batch, seq, width]; both are split
    into the same number of relation heads, so widths and attention-head counts may differ. The KL is averaged over
    the batch, relation heads and real query positions; padded keys get zero probability and padded queries no weight.
    """
    valid = attention_mask.bool()
    weights = valid[:, None, :, None].to(student["query"].dtype)  # [batch, 1, query, 1]
    total = student["query"].new_zeros(())
    for name in ("query", "key", "value"):
        log_s = _relations(student[name], heads, valid)
        log_t = _relations(teacher[name], heads, valid)
        kl = (log_t.exp() * (log_t - log_s)).masked_fill(~valid[:, None, None, :], 0.0).sum(-1, keepdim=True)
        total = total + (kl * weights).sum() / (weights.sum() * heads).clamp_min(1.0)
    return total


def prediction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """L_pred = -softmax(z^T / t) . log_softmax(z^S / t)  (eq. 10): soft cross-entropy, mean over the batch."""
    teacher_probs = F.softmax(teacher_logits / temperature, dim=-1)
    return -(teacher_probs * F.log_softmax(student_logits / temperature, dim=-1)).sum(dim=-1).mean()


def regression_prediction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """L_pred = MSE(z^S, z^T) for regression tasks (one output): mean over the batch."""
    return F.mse_loss(student_logits, teacher_logits)


def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_hard = CE(z^S, y): cross-entropy against the gold labels, mean over the batch (optional term)."""
    return F.cross_entropy(student_logits, labels)
