"""Collecting what the intermediate losses compare: hidden states and pre-softmax attention scores.

Hugging Face BERT returns attention *probabilities*; TinyBERT distils the scores before softmax. Forward hooks
on each layer's query and key projections give Q and K, from which S = Q K^T / sqrt(d_k) is recomputed. The value
projection is recorded too when asked, for the MiniLM self-attention relation loss (Q-Q, K-K, V-V relations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Features:
    logits: torch.Tensor | None
    hidden_states: tuple[torch.Tensor, ...]  # embeddings output, then each layer's output
    attention_scores: list[torch.Tensor]  # per layer, [batch, heads, seq, seq], before masking and softmax
    projections: list[dict[str, torch.Tensor]] | None = None  # per layer {"query", "key", "value"}: [batch, seq, width]


def encoder_of(model: Any) -> Any:
    """The BertEncoder of a task model (BertForSequenceClassification) or of a bare BertModel."""
    return getattr(model, "bert", model).encoder


class ScoreRecorder:
    """Hooks that record every self-attention layer's Q and K projections during a forward pass."""

    def __init__(self, model: Any, values: bool = False) -> None:
        self.layers = [layer.attention.self for layer in encoder_of(model).layer]
        self._queries: list[torch.Tensor | None] = [None] * len(self.layers)
        self._keys: list[torch.Tensor | None] = [None] * len(self.layers)
        self._values: list[torch.Tensor | None] = [None] * len(self.layers)
        self.values = values
        self._handles = []
        for index, attention in enumerate(self.layers):
            self._handles.append(attention.query.register_forward_hook(self._store(self._queries, index)))
            self._handles.append(attention.key.register_forward_hook(self._store(self._keys, index)))
            if values:
                self._handles.append(attention.value.register_forward_hook(self._store(self._values, index)))

    @staticmethod
    def _store(target: list, index: int):
        def hook(_module, _inputs, output):
            target[index] = output

        return hook

    def scores(self) -> list[torch.Tensor]:
        result = []
        for attention, query, key in zip(self.layers, self._queries, self._keys):
            heads, size = attention.num_attention_heads, attention.attention_head_size
            batch, seq, _ = query.shape
            q = query.view(batch, seq, heads, size).transpose(1, 2)
            k = key.view(batch, seq, heads, size).transpose(1, 2)
            result.append(q @ k.transpose(-1, -2) / math.sqrt(size))
        return result

    def projections(self) -> list[dict[str, torch.Tensor]]:
        """Each layer's Q, K (and V when recorded) projections before they are split into heads."""
        return [{"query": q, "key": k, **({"value": v} if self.values else {})}
                for q, k, v in zip(self._queries, self._keys, self._values)]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def forward_features(model: Any, recorder: ScoreRecorder | None, batch: dict[str, torch.Tensor]) -> Features:
    """Run `model` once and return logits, hidden states and (when a recorder is attached) attention scores."""
    outputs = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
        output_hidden_states=True,
    )
    return Features(
        logits=getattr(outputs, "logits", None),  # a bare encoder (general distillation) has no head
        hidden_states=outputs.hidden_states,
        attention_scores=recorder.scores() if recorder is not None else [],
        projections=recorder.projections() if recorder is not None else None,
    )
