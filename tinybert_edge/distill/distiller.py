"""The student plus the learnable projections W_e and W_h that map its width onto the teacher's (eq. 8, 9)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tinybert_edge.distill import losses
from tinybert_edge.distill.features import Features
from tinybert_edge.errors import ConfigError


class Distiller(nn.Module):
    """Holds the student and its projections, and turns teacher/student features into the named loss terms."""

    def __init__(self, student: Any, teacher_config: Any, teacher_layers: list[int], shared_projection: bool = False,
                 attention: bool = True):
        super().__init__()
        self.student = student
        self.teacher_layers = teacher_layers
        # Without the attention term (attention_weight = 0) head counts may differ; the term is then reported as 0.
        self.attention = attention
        s_cfg, t_cfg = student.config, teacher_config
        if attention and s_cfg.num_attention_heads != t_cfg.num_attention_heads:
            raise ConfigError(
                f"the attention loss compares heads one to one, but the student has {s_cfg.num_attention_heads} heads "
                f"and the teacher {t_cfg.num_attention_heads}; give the student {t_cfg.num_attention_heads} heads "
                "or set attention_weight = 0"
            )
        width_s, width_t = s_cfg.hidden_size, t_cfg.hidden_size
        self.embedding_projection: nn.Module | None = None
        self.hidden_projections = nn.ModuleList()
        if width_s != width_t or shared_projection:
            if shared_projection:
                # The released TinyBERT code fits every layer (embeddings included) with one matrix.
                shared = nn.Linear(width_s, width_t)
                self.embedding_projection = shared
                self.hidden_projections = nn.ModuleList([shared] * len(teacher_layers))
            else:
                self.embedding_projection = nn.Linear(width_s, width_t)
                self.hidden_projections = nn.ModuleList(nn.Linear(width_s, width_t) for _ in teacher_layers)

    def _hidden_projection(self, index: int) -> nn.Module | None:
        return self.hidden_projections[index] if len(self.hidden_projections) else None

    def intermediate_terms(self, student: Features, teacher: Features, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embedding, attention and hidden-state terms, each summed over mapped layers (eq. 11, m > 0)."""
        terms = {
            "embedding": losses.embedding_loss(student.hidden_states[0], teacher.hidden_states[0], self.embedding_projection)
        }
        attention = hidden = 0.0
        for m, n in enumerate(self.teacher_layers):
            if self.attention:
                attention = attention + losses.attention_loss(
                    student.attention_scores[m], teacher.attention_scores[n - 1], attention_mask
                )
            hidden = hidden + losses.hidden_loss(
                student.hidden_states[m + 1], teacher.hidden_states[n], self._hidden_projection(m)
            )
        terms["attention"] = attention if self.attention else torch.zeros_like(terms["embedding"])
        terms["hidden"] = hidden
        return terms
