"""The student plus the learnable projections W_e and W_h that map its width onto the teacher's (eq. 8, 9).

The attention term is TinyBERT's score MSE (equal head counts, one student layer per mapped teacher layer) or, with
attention_loss = "relation", MiniLM's self-attention relation KL on the last mapped layer pair, which needs no equal
head count or width. A student initialised from the teacher (`from-teacher:`) brings its stream projection P, at
whose transpose W_e and W_h start, and, when it kept fewer heads, which teacher head each of its heads is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tinybert_edge.distillation import losses
from tinybert_edge.distillation.features import Features
from tinybert_edge.errors import ConfigError


class Distiller(nn.Module):
    """Holds the student and its projections, and turns teacher/student features into the named loss terms."""

    def __init__(self, student: Any, teacher_config: Any, teacher_layers: list[int], shared_projection: bool = False,
                 attention: bool = True, attention_loss: str = "scores", relation_heads: int = 12,
                 initial_projection: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.student = student
        self.teacher_layers = teacher_layers
        # Without the attention term (attention_weight = 0) head counts may differ; the term is then reported as 0.
        self.attention = attention
        self.attention_loss = attention_loss
        self.relation_heads = relation_heads
        s_cfg, t_cfg = student.config, teacher_config
        # A student initialised from the teacher with fewer heads knows which teacher head each of its heads is:
        # the score loss then compares those pairs (only when it maps to the layers it was initialised from).
        self.head_map: list[list[int]] | None = None
        record = getattr(s_cfg, "student_init", None)
        if (isinstance(record, dict) and record.get("method") == "from-teacher"
                and list(record.get("layers") or []) == list(teacher_layers) and record.get("heads")):
            self.head_map = [list(map(int, heads)) for heads in record["heads"]]
        if (attention and attention_loss == "scores" and s_cfg.num_attention_heads != t_cfg.num_attention_heads
                and self.head_map is None):
            raise ConfigError(
                f"the attention loss compares heads one to one, but the student has {s_cfg.num_attention_heads} heads "
                f"and the teacher {t_cfg.num_attention_heads}; give the student {t_cfg.num_attention_heads} heads, "
                "use attention_loss = \"relation\" (MiniLM relations, any head count) or set attention_weight = 0"
            )
        if attention and attention_loss == "relation":
            bad = {who: w for who, w in (("student", s_cfg.hidden_size), ("teacher", t_cfg.hidden_size)) if w % relation_heads}
            if bad:
                raise ConfigError(
                    f"relation_heads = {relation_heads} must divide both widths, but {bad} do not; "
                    "choose a common divisor (e.g. 12 for 312 and 384)"
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
            if initial_projection is not None:
                self._start_at(*initial_projection)

    def _start_at(self, projection: torch.Tensor, offset: torch.Tensor) -> None:
        """W = P^T, b = offset: for a student made with x_S = x_T P, x_S W ≈ x_T, so the hidden and embedding terms
        start near zero instead of asking the student's states to fit a random projection."""
        if tuple(projection.shape) != (self.embedding_projection.out_features, self.embedding_projection.in_features):
            raise ConfigError(f"initial projection of shape {tuple(projection.shape)} does not map the student's width "
                              f"{self.embedding_projection.in_features} to the teacher's "
                              f"{self.embedding_projection.out_features}")
        with torch.no_grad():
            for linear in {id(m): m for m in [self.embedding_projection, *self.hidden_projections]}.values():
                linear.weight.copy_(projection)
                linear.bias.copy_(offset)

    def _hidden_projection(self, index: int) -> nn.Module | None:
        return self.hidden_projections[index] if len(self.hidden_projections) else None

    def intermediate_terms(self, student: Features, teacher: Features, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embedding, attention and hidden-state terms, each summed over mapped layers (eq. 11, m > 0)."""
        terms = {
            "embedding": losses.embedding_loss(student.hidden_states[0], teacher.hidden_states[0], self.embedding_projection)
        }
        attention = hidden = 0.0
        for m, n in enumerate(self.teacher_layers):
            if self.attention and self.attention_loss == "scores":
                scores = teacher.attention_scores[n - 1]
                if self.head_map is not None:
                    scores = scores[:, self.head_map[m]]
                attention = attention + losses.attention_loss(student.attention_scores[m], scores, attention_mask)
            hidden = hidden + losses.hidden_loss(
                student.hidden_states[m + 1], teacher.hidden_states[n], self._hidden_projection(m)
            )
        if self.attention and self.attention_loss == "relation":
            # MiniLM: relations of the student's last layer against its mapped teacher layer, logged as "relation".
            terms["relation"] = losses.relation_loss(
                student.projections[-1], teacher.projections[self.teacher_layers[-1] - 1], attention_mask,
                self.relation_heads,
            )
        else:
            terms["attention"] = attention if self.attention else torch.zeros_like(terms["embedding"])
        terms["hidden"] = hidden
        return terms

    def weighted_total(self, terms: dict[str, torch.Tensor], embedding: float, attention: float,
                       hidden: float) -> torch.Tensor:
        """sum of weight x term; `attention` weighs whichever attention term is in use (scores or relations)."""
        attention_term = terms["relation"] if "relation" in terms else terms["attention"]
        return embedding * terms["embedding"] + attention * attention_term + hidden * terms["hidden"]


class IntermediateObjective:
    """Stage-1 training target shared by general and task distillation: a frozen teacher in eval mode, Q/K(/V)
    recorders on both models, the Distiller, and the weighted sum of its terms.

    `config` is a DistillConfig or GeneralDistillConfig (the same loss-weight and attention field names).
    Call it on a batch to get the named terms plus "total"; `remove()` detaches the recorders afterwards.
    """

    def __init__(self, student: Any, teacher: Any, teacher_layers: list[int], config: Any, device: Any) -> None:
        from tinybert_edge.distillation.features import ScoreRecorder

        self.student, self.teacher, self.config = student, teacher, config
        from tinybert_edge.distillation.student import stream_projection

        self.distiller = Distiller(student, teacher.config, teacher_layers, config.shared_projection,
                                   attention=config.attention_weight > 0, attention_loss=config.attention_loss,
                                   relation_heads=config.relation_heads,
                                   initial_projection=stream_projection(student)).to(device)
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        relations = config.attention_loss == "relation"
        self.teacher_scores = ScoreRecorder(teacher, values=relations)
        self.student_scores = ScoreRecorder(student, values=relations)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from tinybert_edge.distillation.features import forward_features

        with torch.no_grad():
            t = forward_features(self.teacher, self.teacher_scores, batch)
        s = forward_features(self.student, self.student_scores, batch)
        terms = self.distiller.intermediate_terms(s, t, batch["attention_mask"])
        terms["total"] = self.distiller.weighted_total(terms, self.config.embedding_weight,
                                                       self.config.attention_weight, self.config.hidden_weight)
        return terms

    def remove(self) -> None:
        self.student_scores.remove()
        self.teacher_scores.remove()
