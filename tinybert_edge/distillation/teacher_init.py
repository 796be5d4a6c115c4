"""A student of any smaller shape initialised from the teacher's own weights (structured pruning), so that
distillation starts from the teacher's function instead of from noise.

Given a student shape (layers M <= N, width d <= D, heads h' <= h with head size d/h' <= D/h, FFN size f' <= f) and a
small sample of the user's own data (the importance data, encoded with the teacher's tokenizer), the student is
built in four steps, every choice ranked on activations the teacher computes on that sample (activation-based
importance, as Minitron does: no labels and no gradients needed, so a bare pre-trained encoder works too):

1. Depth: student layer m is a copy of teacher layer g(m), g the uniform layer map (TinyBERT section 3.2), the same
   layer the hidden-state loss later maps it to.
2. Heads: the h' heads with the largest mean contribution ||ctx_i W_O,i|| to the attention output are kept.
   Head size (312 = 12 x 26 from 12 x 32): within each kept head, the query/key dimensions j with the largest
   sqrt(E[q_j^2] E[k_j^2]) (their share of the scores q.k) and the value dimensions with the largest
   sqrt(E[ctx_j^2]) ||W_O[:, j]||; the query is scaled by sqrt(d_s / d_t) so the scores keep the teacher's
   1/sqrt(d_t) temperature.
3. FFN: the f' neurons with the largest E[|GELU(a_j)|] ||W_2[:, j]|| (their mean contribution to the output).
4. Width: one D x d matrix P with orthonormal columns maps the teacher's residual stream into the student's,
   x_S = x_T P, for every layer at once (the residual connection is an identity in both models, so one basis must
   serve them all). Weights that read the stream become W P, weights that write it P^T W, embeddings E P.
   - "select" (the default at the teacher's width): P picks the d stream channels of largest energy E[x_c^2] over
     every LayerNorm output of the chosen layers (Minitron's embedding-channel pruning). At full width P = I and
     the student is the teacher, exactly.
   - "pca" (the default for a narrower student, as it measured better): P spans 1/sqrt(D) and the top d - 1
     principal directions of the channel-centred stream x C (SliceGPT's PCA), rotated so that the student's
     all-ones direction is the teacher's; then a LayerNorm's centring commutes with P. SliceGPT folds LayerNorm
     into an exact rotation of a pre-LN decoder; BERT is post-LN: the residual stream *is* gamma * norm(s) + beta,
     and norm(s P) gamma' = norm(s) gamma P holds for a diagonal gamma' only when P permutes channels or gamma is
     uniform. So "pca" is exact at full width only for
     uniform gamma (tested), and approximate otherwise.
   Every LayerNorm of the student (embeddings, and both of each layer) then gets its gamma', beta' by least squares,
   per channel c, of the teacher's output (LN_T(s_T) P)_c on the student's own normalised input norm(s_S)_c,
   fitted layer by layer in order on the partially built student, so each fit also absorbs the errors of the
   layers before it (and of the dropped teacher layers). This is what makes "select" usable: a LayerNorm that
   averages over d instead of D channels otherwise rescales every channel.

The student is a plain `BertFor...`/`BertModel` of the teacher's class with a smaller config; nothing in it knows
how it was made except `config.student_init`, the record `describe` writes.

Measured on SST-2 (the sst2 suite, budget `small`: all-MiniLM-L6-v2 fine-tuned on 5,000 train examples, dev 0.8257;
students task-distilled on the same 2,000 examples; 512 importance texts), dev accuracy before any training / after:
TinyBERT4 shape from random weights + general distillation on 4,000 sentences -> 0.509 after; from the teacher with
"select" 0.766 / 0.794, with "pca" 0.781 / 0.803 (97.2% of the teacher); without the LayerNorm fit 0.737 ("select")
and 0.678 ("pca") before training; the 3-layer teacher-layer student 0.755 / 0.797; 4 x 256 with "pca" 0.771 / 0.787.
The initialisation (512 texts, ~6,700 tokens) took 3.3-3.5 s for the 6-layer teacher on the two shared cores when
they were nearly free (load ~3), 51 s at load ~6 and 190-230 s at load ~17 (37-44 s of CPU time, mostly threads
waiting their turn), so `config.student_init` records both `seconds` and `cpu_seconds`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from tinybert_edge.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

HIDDEN_METHODS = ("select", "pca")
INIT_METHODS = ("random", "teacher-layers", "from-teacher", "general-distilled", "folder")
# How much of the user's data ranks the units: enough for stable second moments of 384 channels, small enough that
# the 6-layer teacher's forward passes take seconds on two cores.
IMPORTANCE_EXAMPLES = 512
IMPORTANCE_TOKENS = 16_384


@dataclass(frozen=True)
class StudentShape:
    """The student's depth, width, heads and FFN size (what a BertConfig calls them in `config_keys`)."""

    layers: int
    hidden: int
    heads: int
    intermediate: int

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    @property
    def name(self) -> str:
        """Compact and unambiguous: 4l-312h-12a-1200i (layers, hidden width, attention heads, intermediate size)."""
        return f"{self.layers}l-{self.hidden}h-{self.heads}a-{self.intermediate}i"

    @classmethod
    def from_config(cls, config: Any) -> "StudentShape":
        get = (lambda k: config[k]) if isinstance(config, dict) else (lambda k: getattr(config, k))
        return cls(layers=get("num_hidden_layers"), hidden=get("hidden_size"), heads=get("num_attention_heads"),
                   intermediate=get("intermediate_size"))

    def config_keys(self) -> dict[str, int]:
        return {"num_hidden_layers": self.layers, "hidden_size": self.hidden, "num_attention_heads": self.heads,
                "intermediate_size": self.intermediate}

    def check_fits(self, teacher: "StudentShape", where: str) -> None:
        """Raise a ConfigError naming the first constraint the shape breaks: every size positive, the head count
        dividing the width, and nothing larger than the teacher's (selection only removes units)."""
        for label, value in (("layers", self.layers), ("hidden width", self.hidden), ("attention heads", self.heads),
                             ("FFN size", self.intermediate)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: {label} must be a positive integer, got {value!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"{where}: {self.heads} attention heads do not divide the width {self.hidden}; choose a "
                              f"head count that divides it (e.g. {_divisors_near(self.hidden, self.heads)})")
        limits = (("layers", self.layers, teacher.layers), ("hidden width", self.hidden, teacher.hidden),
                  ("attention heads", self.heads, teacher.heads), ("FFN size", self.intermediate, teacher.intermediate),
                  ("head size", self.head_size, teacher.head_size))
        for label, value, limit in limits:
            if value > limit:
                raise ConfigError(
                    f"{where}: the student's {label} ({value}) exceeds the teacher's ({limit}); initialisation from "
                    f"the teacher keeps a subset of its units, so every size must be at most the teacher's "
                    f"(teacher {teacher.name}, student {self.name})")


def _divisors_near(width: int, heads: int) -> str:
    divisors = sorted((d for d in range(1, width + 1) if width % d == 0), key=lambda d: (abs(d - heads), d))
    return ", ".join(map(str, sorted(divisors[:3])))


def describe(method: str, shape_name: str, **details: Any) -> dict[str, Any]:
    """The record of how a student was made, stored as `config.student_init` (config.json) and in distill.json.

    `method` is one of "random", "teacher-layers", "from-teacher", "general-distilled", "folder" (a saved student
    without a record); `name` is what reports show, e.g. "tinybert-4l-312h · from teacher (select)"."""
    if method not in INIT_METHODS:
        raise ValueError(f"unknown init method '{method}'; available: {', '.join(INIT_METHODS)}")
    suffix = {"random": "random init", "folder": f"loaded from {details.get('folder')}",
              "teacher-layers": f"teacher layers {','.join(map(str, details.get('layers') or []))} copied",
              "general-distilled": "general-distilled"}.get(method, f"from teacher ({details.get('hidden_method')})")
    if method == "general-distilled" and details.get("start"):
        suffix += f" after {details['start'].get('name', 'an earlier student').split(' · ', 1)[-1]}"
    return {"name": f"{shape_name} · {suffix}", "method": method, "shape": shape_name, **details}


def check_importance_data(encoded: Any, teacher_config: Any, tokenizer: Any = None) -> None:
    """Raise unless `encoded` (an EncodedData) holds at least one example encoded with the teacher's tokenizer:
    every id inside the teacher's vocabulary and, when the tokenizer is given, every row opening with its [CLS]."""
    if encoded is None or len(encoded) == 0 or not any(len(ids) for ids in encoded.input_ids):
        raise ConfigError("importance data is empty: initialising a student from the teacher ranks its heads, "
                          "neurons and channels on a sample of your training texts; pass at least one example")
    vocab = teacher_config.vocab_size
    largest = max(max(ids) for ids in encoded.input_ids if ids)
    if largest >= vocab or min(min(ids) for ids in encoded.input_ids if ids) < 0:
        raise ModelError(f"importance data holds token id {largest}, outside the teacher's vocabulary of {vocab} "
                         "tokens: it was encoded by another tokenizer; encode it with the teacher's "
                         "(tinybert_edge.models.load_tokenizer(teacher))")
    if tokenizer is not None:
        if len(tokenizer) != vocab:
            raise ModelError(f"the tokenizer given with the importance data has {len(tokenizer)} tokens and the "
                             f"teacher {vocab}: use the teacher's own tokenizer")
        cls_id = tokenizer.cls_token_id
        stray = next((ids[0] for ids in encoded.input_ids if ids and ids[0] != cls_id), None)
        if cls_id is not None and stray is not None:
            raise ModelError(f"importance data has rows that start with token id {stray}, not the teacher "
                             f"tokenizer's [CLS] ({cls_id}): it was encoded by another tokenizer; encode it with "
                             "the teacher's (tinybert_edge.models.load_tokenizer(teacher))")


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int = 128) -> Any:
    """Plain texts as an EncodedData (no labels), e.g. the first lines of a general-distillation corpus."""
    import numpy as np

    from tinybert_edge.data import EncodedData

    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False,
                        return_token_type_ids=True)
    return EncodedData(input_ids=[list(x) for x in encoded["input_ids"]],
                       token_type_ids=[list(x) for x in encoded["token_type_ids"]],
                       labels=np.zeros(len(texts), dtype=np.int64))


@dataclass
class TeacherInit:
    """What `init_from_teacher` returns: the student and the D x d stream projection P it was made with
    (x_S = x_T P; the hidden-state loss's W_h starts as P^T, with `offset` its bias)."""

    student: Any
    projection: Any
    offset: Any
    record: dict[str, Any]


def init_from_teacher(teacher: Any, shape: StudentShape, model_class: Any, importance_data: Any,
                      hidden_method: str | None = None, tokenizer: Any = None,
                      head_config: dict[str, Any] | None = None, shape_name: str | None = None,
                      layers: Sequence[int] | None = None, max_examples: int = IMPORTANCE_EXAMPLES) -> TeacherInit:
    """Build a `model_class` student of `shape` from `teacher` (see the module docstring for the method).

    `hidden_method` is "pca" or "select"; None picks "pca" for a narrower student and "select" (exact) at the
    teacher's width. `importance_data` is an EncodedData of the user's texts encoded with the teacher's tokenizer
    (the first `max_examples` rows are used); `head_config` the task head's config keys (labels); `layers` the
    teacher layers (1-based) to keep, the uniform layer map when None. Raises ConfigError/ModelError before
    building anything.
    """
    import torch

    from tinybert_edge.distillation.layer_map import layer_map

    started, cpu_started = time.perf_counter(), time.process_time()
    where = f"student '{shape_name or shape.name}' from the teacher"
    if hidden_method is not None and hidden_method not in HIDDEN_METHODS:
        raise ConfigError(f"{where}: unknown width method '{hidden_method}'; available: {', '.join(HIDDEN_METHODS)}")
    t_config = teacher.config
    t_shape = StudentShape.from_config(t_config)
    shape.check_fits(t_shape, where)
    if hidden_method is None:
        hidden_method = "pca" if shape.hidden < t_shape.hidden else "select"
    chosen = list(layers) if layers is not None else layer_map(shape.layers, t_shape.layers, "uniform")
    if len(chosen) != shape.layers or any(not 1 <= n <= t_shape.layers for n in chosen):
        raise ConfigError(f"{where}: layers {chosen} must be {shape.layers} teacher layers numbered "
                          f"1..{t_shape.layers}")
    if getattr(t_config, "position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{where}: the teacher uses '{t_config.position_embedding_type}' position embeddings; "
                         "initialisation from the teacher supports absolute ones (BERT's)")
    check_importance_data(importance_data, t_config, tokenizer)

    was_training = teacher.training
    teacher.eval()
    source = getattr(teacher, "bert", teacher)
    rows = _calibration_rows(importance_data, max_examples)
    batches = [importance_data.collate(rows[i : i + 32], pad_id=t_config.pad_token_id or 0)
               for i in range(0, len(rows), 32)]
    with torch.no_grad():
        stats = _teacher_statistics(teacher, source, batches, chosen)
        projection, offset = _stream_projection(stats, shape.hidden, hidden_method)
        config = _student_config(t_config, shape, head_config)
        student = model_class(config).eval()
        target = getattr(student, "bert", student)
        kept = _copy_weights(source, target, teacher, student, stats, chosen, projection, shape)
        fitted = _fit_layer_norms(student, target, stats, batches, projection, exact=_is_identity(projection))
    teacher.train(was_training)
    # Wall time depends on what else the machine runs; CPU time (all threads of this process) much less.
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    record = describe("from-teacher", shape_name or shape.name, hidden_method=hidden_method,
                      importance="activation", layers=chosen, heads=kept["heads"],
                      importance_examples=len(rows), importance_tokens=stats["tokens"],
                      layer_norms_fitted=fitted, seconds=round(seconds, 2), cpu_seconds=round(cpu_seconds, 2))
    log.info("student: %s from the teacher in %.1f s (%.1f s CPU; layers %s, %d importance examples, %d tokens)",
             record["name"], seconds, cpu_seconds, chosen, len(rows), stats["tokens"])
    return TeacherInit(student=student, projection=projection.float(), offset=offset.float(), record=record)


def _calibration_rows(encoded: Any, max_examples: int) -> list[int]:
    """The first rows whose tokens fit IMPORTANCE_TOKENS (at least one), at most `max_examples`, sorted by length
    so batches pad little."""
    rows, tokens = [], 0
    for index, ids in enumerate(encoded.input_ids):
        if len(rows) >= max_examples or (rows and tokens + len(ids) > IMPORTANCE_TOKENS):
            break
        if ids:
            rows.append(index)
            tokens += len(ids)
    return sorted(rows, key=lambda i: len(encoded.input_ids[i]))


def _tensors(batch: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {k: torch.as_tensor(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _layer_norms(bert: Any) -> list[Any]:
    """The residual stream's LayerNorms in order: embeddings, then each layer's attention and output LayerNorm."""
    norms = [bert.embeddings.LayerNorm]
    for layer in bert.encoder.layer:
        norms += [layer.attention.output.LayerNorm, layer.output.LayerNorm]
    return norms


def _teacher_statistics(teacher: Any, source: Any, batches: list[dict[str, Any]], chosen: list[int]) -> dict[str, Any]:
    """One pass of the teacher over the importance data, recording on real tokens only:
    per chosen layer the second moments of Q, K and the attention context, E|GELU(a)| of the FFN and each head's
    mean output norm; and the inputs of the stream's LayerNorms that the student keeps (embeddings', and both of
    each chosen layer), whose outputs are the targets of the LayerNorm fits and the stream's statistics."""
    import torch

    t_layers = source.encoder.layer
    heads = teacher.config.num_attention_heads
    size = teacher.config.hidden_size // heads
    mask_now: dict[str, Any] = {}
    sums: dict[str, Any] = {}
    ln_inputs: dict[int, list[Any]] = {}

    def real(t: Any) -> Any:  # [batch, seq, width] -> [tokens, width], padding removed
        return t[mask_now["mask"]].double()

    def add(key: str, value: Any) -> None:
        sums[key] = sums[key] + value if key in sums else value

    handles = []

    def record_ln(index: int):
        def hook(_module, inputs, _output):
            ln_inputs.setdefault(index, []).append(real(inputs[0]).float())
        return hook

    # Teacher LayerNorm index k: 0 embeddings, 2n-1 and 2n the attention/output LayerNorms of teacher layer n.
    keep_ln = [0] + [k for n in chosen for k in (2 * n - 1, 2 * n)]
    for k, module in enumerate(_layer_norms(source)):
        if k in keep_ln:
            handles.append(module.register_forward_hook(record_ln(k)))
    for n in chosen:
        layer = t_layers[n - 1]
        attention = layer.attention
        w_o = attention.output.dense.weight.double()  # [D, all_head]

        def on_q(_m, _i, out, n=n):
            add(f"q2.{n}", real(out).pow(2).sum(0))

        def on_k(_m, _i, out, n=n):
            add(f"k2.{n}", real(out).pow(2).sum(0))

        def on_context(_m, inputs, n=n, w_o=w_o):
            ctx = real(inputs[0])  # [tokens, all_head]
            add(f"ctx2.{n}", ctx.pow(2).sum(0))
            per_head = torch.stack([(ctx[:, h * size : (h + 1) * size] @ w_o[:, h * size : (h + 1) * size].T)
                                    .norm(dim=-1).sum() for h in range(heads)])
            add(f"head.{n}", per_head)

        def on_ffn(_m, _i, out, n=n):
            add(f"ffn.{n}", real(out).abs().sum(0))

        handles += [attention.self.query.register_forward_hook(on_q), attention.self.key.register_forward_hook(on_k),
                    attention.output.dense.register_forward_pre_hook(on_context),
                    layer.intermediate.register_forward_hook(on_ffn)]
    # The task head: which of its linear layers read the pooled vector ([batch, width]) or the stream, and how
    # strongly the pooler's outputs are used.
    stats_rank: dict[str, int] = {}
    head_weights: dict[str, Any] = {}
    if source is not teacher:
        for name, head in teacher.named_children():
            if name != "bert" and isinstance(head, torch.nn.Linear):
                head_weights[name] = head.weight.double()

                def on_head(_m, inputs, name=name):
                    stats_rank[name] = inputs[0].dim()

                handles.append(head.register_forward_pre_hook(on_head))
    if getattr(source, "pooler", None) is not None:
        def on_pooler(_m, _i, out):
            add("pooled", out.double().abs().sum(0))  # one row per example; only its ranking is used

        handles.append(source.pooler.register_forward_hook(on_pooler))
    tokens = 0
    try:
        for batch in batches:
            inputs = _tensors(batch)
            mask_now["mask"] = inputs["attention_mask"].bool()
            tokens += int(mask_now["mask"].sum())
            teacher(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    stats = {key: value / tokens for key, value in sums.items()}
    stats["ln_inputs"] = {k: torch.cat(v) for k, v in ln_inputs.items()}
    stats["ln_modules"] = {k: m for k, m in enumerate(_layer_norms(source)) if k in keep_ln}
    stats["ln_targets"] = {k: stats["ln_modules"][k](s).double() for k, s in stats["ln_inputs"].items()}
    stats["keep_ln"] = keep_ln
    stats["tokens"] = tokens
    stats["head_input_rank"], stats["head_weights"] = stats_rank, head_weights
    stats["heads"], stats["head_size"] = heads, size
    return stats


def _stream_projection(stats: dict[str, Any], width: int, method: str) -> tuple[Any, Any]:
    """P (D x d, orthonormal columns) and the offset E[x - x P P^T] (what the stream holds outside P's span)."""
    import torch

    stream = torch.cat(list(stats["ln_targets"].values()))  # every LayerNorm output of the kept layers: [N, D]
    full = stream.shape[1]
    if method == "select":
        energy = stream.pow(2).mean(0)
        channels = torch.sort(torch.topk(energy, width).indices).values
        projection = torch.eye(full, dtype=torch.float64)[:, channels]
    else:
        centred = stream - stream.mean(1, keepdim=True)  # x C: the part a LayerNorm's centring keeps
        ones = torch.full((full, 1), full ** -0.5, dtype=torch.float64)
        # Principal directions of x C with the all-ones one (eigenvalue 0) projected out, then 1/sqrt(D) first.
        values, vectors = torch.linalg.eigh(centred.T @ centred / len(centred))
        top = vectors[:, torch.argsort(values, descending=True)[: width - 1]]
        top = top - ones @ (ones.T @ top)
        basis, _ = torch.linalg.qr(torch.cat([ones, top], dim=1))
        basis[:, 0] = ones[:, 0]  # qr may flip the sign of the first column
        # H: a Householder reflection with H e_1 = 1_d / sqrt(d); P = B H^T maps 1_d/sqrt(d) to 1_D/sqrt(D).
        target = torch.full((width,), width ** -0.5, dtype=torch.float64)
        e1 = torch.zeros(width, dtype=torch.float64)
        e1[0] = 1.0
        v = e1 - target
        householder = (torch.eye(width, dtype=torch.float64) - 2 * torch.outer(v, v) / v.dot(v)
                       if v.norm() > 1e-12 else torch.eye(width, dtype=torch.float64))
        projection = basis @ householder.T
    offset = (stream - stream @ projection @ projection.T).mean(0)
    return projection, offset


def _is_identity(projection: Any) -> bool:
    import torch

    return projection.shape[0] == projection.shape[1] and torch.equal(
        projection, torch.eye(projection.shape[0], dtype=projection.dtype))


def _student_config(teacher_config: Any, shape: StudentShape, head_config: dict[str, Any] | None) -> Any:
    from transformers import BertConfig

    base = teacher_config.to_dict()
    for key in ("architectures", "_name_or_path", "transformers_version", "id2label", "label2id", "student_init"):
        base.pop(key, None)
    base.update(shape.config_keys())
    if head_config:
        base.update(head_config)
    elif teacher_config.id2label:
        base.update(id2label=teacher_config.id2label, label2id=teacher_config.label2id)
    config = BertConfig(**base)
    config._attn_implementation = teacher_config._attn_implementation
    return config


def _top(scores: Any, count: int) -> Any:
    """Indices of the `count` largest scores, in ascending index order (so kept units keep their order)."""
    import torch

    return torch.sort(torch.topk(scores, count).indices).values


def _copy_weights(source: Any, target: Any, teacher: Any, student: Any, stats: dict[str, Any], chosen: list[int],
                  projection: Any, shape: StudentShape) -> dict[str, Any]:
    """Copy the chosen layers' kept units into the student, every stream-facing side through `projection`."""
    import torch

    p = projection
    heads, size = stats["heads"], stats["head_size"]
    new_size = shape.head_size

    def set_linear(linear: Any, weight: Any, bias: Any) -> None:
        linear.weight.copy_(weight.to(linear.weight.dtype))
        linear.bias.copy_(bias.to(linear.bias.dtype))

    emb_s, emb_t = target.embeddings, source.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(emb_s, name).weight.copy_((getattr(emb_t, name).weight.double() @ p).float())
    kept_heads = []
    for m, n in enumerate(chosen):
        t_layer, s_layer = source.encoder.layer[n - 1], target.encoder.layer[m]
        head_scores = stats[f"head.{n}"]
        keep = _top(head_scores, shape.heads).tolist()
        kept_heads.append(keep)
        qk = stats[f"q2.{n}"].mul(stats[f"k2.{n}"]).sqrt()
        w_o = t_layer.attention.output.dense.weight.double()
        v_score = stats[f"ctx2.{n}"].sqrt() * w_o.norm(dim=0)
        q_index, v_index = [], []
        for h in keep:
            span = torch.arange(h * size, (h + 1) * size)
            q_index.append(span[_top(qk[span], new_size)])
            v_index.append(span[_top(v_score[span], new_size)])
        q_index, v_index = torch.cat(q_index), torch.cat(v_index)
        scale = math.sqrt(new_size / size)  # scores q.k / sqrt(d): keep the teacher's temperature
        t_self, s_self = t_layer.attention.self, s_layer.attention.self
        set_linear(s_self.query, scale * t_self.query.weight.double()[q_index] @ p,
                   scale * t_self.query.bias.double()[q_index])
        set_linear(s_self.key, t_self.key.weight.double()[q_index] @ p, t_self.key.bias.double()[q_index])
        set_linear(s_self.value, t_self.value.weight.double()[v_index] @ p, t_self.value.bias.double()[v_index])
        out = t_layer.attention.output.dense
        set_linear(s_layer.attention.output.dense, p.T @ out.weight.double()[:, v_index], p.T @ out.bias.double())
        neurons = _top(stats[f"ffn.{n}"] * t_layer.output.dense.weight.double().norm(dim=0), shape.intermediate)
        up, down = t_layer.intermediate.dense, t_layer.output.dense
        set_linear(s_layer.intermediate.dense, up.weight.double()[neurons] @ p, up.bias.double()[neurons])
        set_linear(s_layer.output.dense, p.T @ down.weight.double()[:, neurons], p.T @ down.bias.double())
    # The pooler (tanh(W x_[CLS] + b)) has its own output space: tanh is elementwise, so a rotation cannot pass
    # through it; its d outputs are a selection of the teacher's, ranked by E|pooled_c| ||W_head[:, c]||.
    pooled = None
    if getattr(source, "pooler", None) is not None and getattr(target, "pooler", None) is not None:
        readers = [stats["head_weights"][name] for name, rank in stats["head_input_rank"].items() if rank == 2]
        weight_norm = torch.stack([w.norm(dim=0) for w in readers]).sum(0) if readers else 1.0
        pooled = _top(stats["pooled"] * weight_norm, shape.hidden)
        dense = source.pooler.dense
        set_linear(target.pooler.dense, dense.weight.double()[pooled] @ p, dense.bias.double()[pooled])
    for name, head in ([] if source is teacher else teacher.named_children()):  # the task head
        if name == "bert":
            continue
        mine = getattr(student, name, None)
        linears = [(n_, mod) for n_, mod in head.named_modules() if isinstance(mod, torch.nn.Linear)]
        if isinstance(head, torch.nn.Linear) and isinstance(mine, torch.nn.Linear) and name in stats["head_input_rank"]:
            # A head fed [batch, width] reads the pooler (sequence classification); [batch, seq, width] the stream.
            reads_pooler = stats["head_input_rank"][name] == 2 and pooled is not None
            weight = head.weight.double()[:, pooled] if reads_pooler else head.weight.double() @ p
            set_linear(mine, weight, head.bias.double())
        elif linears:
            raise ModelError(f"the teacher's head '{name}' ({type(head).__name__}) is not one linear layer over the "
                             "hidden states; initialisation from the teacher copies only such heads")
    return {"heads": kept_heads}


class _Stop(Exception):
    """Raised by a hook to end a forward pass once it has what it needs."""


def _fit_layer_norms(student: Any, target: Any, stats: dict[str, Any], batches: list[dict[str, Any]], projection: Any,
                     exact: bool) -> int:
    """Fit every student LayerNorm's gamma', beta' in stream order (see the module docstring): per channel c,
    least squares of y_c = (LN_T(s_T) P)_c on z_c = norm(s_S)_c over the importance tokens,
        gamma'_c = cov(z_c, y_c) / var(z_c),   beta'_c = mean(y_c) - gamma'_c mean(z_c),
    with s_S the student's own input to that LayerNorm once the LayerNorms before it are fitted. When P = I
    (full width, "select") the teacher's gamma and beta are copied instead: the student is then the teacher.

    One pass of the student over the importance data in all: the stream is carried layer by layer, each layer's
    attention run once up to its LayerNorm (the layer called as its encoder calls it, masks included), then its FFN."""
    import torch

    s_norms = _layer_norms(target)
    t_keys = stats["keep_ln"]
    if exact:
        for module, key in zip(s_norms, t_keys):
            module.weight.copy_(stats["ln_modules"][key].weight)
            module.bias.copy_(stats["ln_modules"][key].bias)
        return 0
    inputs = [_tensors(batch) for batch in batches]
    masks = [batch["attention_mask"].bool() for batch in inputs]
    keys = iter(t_keys)

    def fit(module: Any, captured: list[Any]) -> None:
        """Fit `module` on its inputs `captured` (one padded tensor per batch), real tokens only."""
        s = torch.cat([c[m].double() for c, m in zip(captured, masks)])
        z = (s - s.mean(1, keepdim=True)) / (s.var(1, unbiased=False, keepdim=True) + module.eps).sqrt()
        y = stats["ln_targets"][next(keys)] @ projection
        z_mean, y_mean = z.mean(0), y.mean(0)
        variance = (z - z_mean).pow(2).mean(0).clamp_min(1e-12)
        gamma = ((z - z_mean) * (y - y_mean)).mean(0) / variance
        module.weight.copy_(gamma.float())
        module.bias.copy_((y_mean - gamma * z_mean).float())

    def inputs_of(module: Any, run: Any) -> list[Any]:
        """What `module` receives when `run(i)` runs on batch i, the rest of that forward pass skipped."""
        captured: list[Any] = []

        def hook(_m, args):
            captured.append(args[0])
            raise _Stop

        handle = module.register_forward_pre_hook(hook)
        try:
            for index in range(len(inputs)):
                try:
                    run(index)
                except _Stop:
                    pass
        finally:
            handle.remove()
        return captured

    embeddings = target.embeddings
    sums = inputs_of(embeddings.LayerNorm, lambda i: embeddings(input_ids=inputs[i]["input_ids"],
                                                                token_type_ids=inputs[i]["token_type_ids"]))
    fit(embeddings.LayerNorm, sums)
    stream = [embeddings.LayerNorm(x) for x in sums]
    # How the encoder calls a layer (the attention mask in the form this attention implementation wants).
    calls: list[tuple[tuple, dict]] = []

    def record_call(_m, args, kwargs):
        calls.append((args[1:], kwargs))
        raise _Stop

    handle = target.encoder.layer[0].register_forward_pre_hook(record_call, with_kwargs=True)
    try:
        for batch in inputs:
            try:
                target(**batch)
            except _Stop:
                pass
    finally:
        handle.remove()
    for layer in target.encoder.layer:
        attention_norm = layer.attention.output.LayerNorm
        sums = inputs_of(attention_norm, lambda i: layer(stream[i], *calls[i][0], **calls[i][1]))
        fit(attention_norm, sums)
        attended = [attention_norm(x) for x in sums]
        output_norm = layer.output.LayerNorm
        sums = inputs_of(output_norm, lambda i: layer.output(layer.intermediate(attended[i]), attended[i]))
        fit(output_norm, sums)
        stream = [output_norm(x) for x in sums]
    return len(s_norms)
