"""Building the student: a named TinyBERT shape, any BertConfig, a subset of the teacher's own layers, a shape
initialised from the teacher, or a folder.

Student specs (strings, so they fit a CLI flag and a TOML file):
- "tinybert-4l-312h", "tinybert-6l-768h", "edge-4l-256h": named shapes (tinybert_edge.models.STUDENT_PRESETS),
  randomly initialised, teacher's vocabulary;
- "teacher-layers:2,4,6": the teacher's embeddings and these encoder layers (1-based), copied, same width;
- "config:<path to config.json>": any BertConfig, randomly initialised;
- "from-teacher:<preset or path to config.json>[@select|@pca]": that shape initialised from the teacher
  (tinybert_edge.distillation.teacher_init): the uniform layer map's layers, the most important heads, head
  dimensions and FFN neurons on a sample of the training texts, and the width reduced by a PCA rotation ("@pca",
  the default for a narrower student) or channel selection ("@select", the default at the teacher's width, where
  it is exact), e.g. "from-teacher:tinybert-4l-312h";
- a folder path: a student saved earlier (for example one that went through general distillation).

Every student carries `config.student_init`, the record of how it was made (`teacher_init.describe`: a `name` such
as "tinybert-4l-312h · from teacher (select)", the method and its details), which config.json and distill.json keep.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from tinybert_edge.errors import ConfigError, ModelError
from tinybert_edge.io import resolve_path
from tinybert_edge.models import STUDENT_PRESETS, check_model_folder

log = logging.getLogger(__name__)


TEACHER_INIT_PREFIX = "from-teacher:"


def is_teacher_init(spec: str) -> bool:
    """Whether `spec` asks for a student initialised from the teacher (it then needs importance data)."""
    return spec.startswith(TEACHER_INIT_PREFIX)


def build_student(spec: str, teacher: Any, head: bool = True, task: Any = None, importance_data: Any = None,
                  tokenizer: Any = None) -> Any:
    """Return a student for `teacher`: a model of `task` (the teacher's task when None) with the teacher's head
    settings (labels), or with `head=False` (general distillation from a pre-trained encoder) a bare BertModel.

    `importance_data` (an EncodedData of training texts encoded with the teacher's `tokenizer`) is required by
    "from-teacher:" specs and ignored by the others."""
    from transformers import BertModel

    from tinybert_edge.distillation.teacher_init import StudentShape, describe
    from tinybert_edge.tasks import get_task, task_of_model

    if head:
        task = get_task(task) if task is not None else task_of_model(teacher)
        model_class = task.model_class()
        labels = task.head_config(task.label_names(teacher.config)) or {}
    else:
        model_class, labels = BertModel, {}
    if spec in STUDENT_PRESETS:
        config = _student_config(teacher.config, STUDENT_PRESETS[spec], labels)
        config.student_init = describe("random", spec)
        log.info("student: preset %s, randomly initialised", spec)
        return model_class(config)
    if spec.startswith("teacher-layers:"):
        return _layer_subset(spec, teacher, model_class)
    if spec.startswith("config:"):
        path = resolve_path(spec[len("config:") :])
        config = _student_config(teacher.config, _read_config(path), labels)
        config.student_init = describe("random", StudentShape.from_config(config).name, config_file=str(path))
        return model_class(config)
    if is_teacher_init(spec):
        return _from_teacher(spec, teacher, model_class, labels, importance_data, tokenizer)
    path = resolve_path(spec)
    if path.exists():
        # A general-distilled student is a bare encoder: its task head starts from scratch here.
        folder = check_model_folder(path, role="student")
        student = model_class.from_pretrained(
            folder, **labels, ignore_mismatched_sizes=head, use_safetensors=(folder / "model.safetensors").is_file()
        )
        check_vocabulary(student.config, teacher.config)
        if not isinstance(getattr(student.config, "student_init", None), dict):
            student.config.student_init = describe("folder", StudentShape.from_config(student.config).name,
                                                   folder=str(folder))
        log.info("student: loaded from %s (%s)", folder, student.config.student_init.get("name"))
        return student
    raise ConfigError(
        f"unknown student '{spec}'; use one of {', '.join(STUDENT_PRESETS)}, 'teacher-layers:1,3,5', "
        "'config:<config.json>', 'from-teacher:<preset or config.json>[@select|@pca]' or a student model folder"
    )


def _read_config(path: Any) -> dict[str, Any]:
    try:
        overrides = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"student config '{path}' is not a readable JSON BertConfig: {exc}") from exc
    if not isinstance(overrides, dict):
        raise ConfigError(f"student config '{path}' must be a JSON object of BertConfig keys")
    return overrides


def _from_teacher(spec: str, teacher: Any, model_class: Any, labels: dict[str, Any], importance_data: Any,
                  tokenizer: Any) -> Any:
    """A "from-teacher:<shape>[@method]" student (see tinybert_edge.distillation.teacher_init)."""
    from tinybert_edge.distillation.teacher_init import HIDDEN_METHODS, StudentShape, init_from_teacher

    body = spec[len(TEACHER_INIT_PREFIX) :]
    shape_spec, _, method = body.rpartition("@")
    if not shape_spec or method not in HIDDEN_METHODS:
        if "@" in body and method not in HIDDEN_METHODS and not resolve_path(body).exists():
            raise ConfigError(f"student '{spec}': unknown width method '{method}'; use "
                              f"{' or '.join('@' + m for m in HIDDEN_METHODS)} (or none: PCA for a narrower "
                              "student, the teacher's channels at full width)")
        shape_spec, method = body, None
    if shape_spec in STUDENT_PRESETS:
        shape = StudentShape.from_config(STUDENT_PRESETS[shape_spec])
        name = shape_spec
    elif shape_spec:
        merged = {**teacher.config.to_dict(), **_read_config(resolve_path(shape_spec))}
        if merged.get("vocab_size") != teacher.config.vocab_size:
            other = _student_config(teacher.config, {"vocab_size": merged.get("vocab_size")}, {})
            check_vocabulary(other, teacher.config)
        shape = StudentShape.from_config(merged)
        name = shape.name
    else:
        raise ConfigError(f"student '{spec}': name a shape after '{TEACHER_INIT_PREFIX}', a preset "
                          f"({', '.join(STUDENT_PRESETS)}) or a config.json, e.g. from-teacher:tinybert-4l-312h")
    if importance_data is None:
        raise ConfigError(f"student '{spec}' is initialised from the teacher and needs importance data (a sample "
                          "of the training texts encoded with the teacher's tokenizer); distill() and "
                          "general_distill() pass it, a direct caller passes importance_data=")
    made = init_from_teacher(teacher, shape, model_class, importance_data, hidden_method=method, tokenizer=tokenizer,
                             head_config=labels, shape_name=name)
    made.student.config.student_init = made.record
    attach_projection(made.student, made.projection, made.offset)
    return made.student


_PROJECTION_ATTRIBUTE = "_tinybert_edge_stream_projection"


def attach_projection(student: Any, projection: Any, offset: Any) -> None:
    """Remember, on the in-memory student only (never saved), the D x d matrix P with x_S = x_T P it was made
    with, so the distiller can start its hidden-state projections W_h, W_e at P^T (plus `offset`)."""
    object.__setattr__(student, _PROJECTION_ATTRIBUTE, (projection, offset))


def stream_projection(student: Any) -> tuple[Any, Any] | None:
    """(P, offset) of a student initialised from the teacher in this process; None for any other student."""
    return getattr(student, _PROJECTION_ATTRIBUTE, None)


def _student_config(teacher_config: Any, shape: dict[str, Any], labels: dict[str, Any]) -> Any:
    from transformers import BertConfig

    base = teacher_config.to_dict()
    for key in ("architectures", "_name_or_path", "transformers_version", "id2label", "label2id", "student_init"):
        base.pop(key, None)
    base.update(shape)
    base.update(labels)
    config = BertConfig(**base)
    check_vocabulary(config, teacher_config)
    return config


def check_vocabulary(student_config: Any, teacher_config: Any) -> None:
    if student_config.vocab_size != teacher_config.vocab_size:
        raise ModelError(
            f"student vocabulary ({student_config.vocab_size} tokens) differs from the teacher's "
            f"({teacher_config.vocab_size}); the student must use the teacher's tokenizer"
        )


def _layer_subset(spec: str, teacher: Any, model_class: Any) -> Any:
    try:
        layers = [int(x) for x in spec.split(":", 1)[1].split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"student '{spec}': list teacher layers as integers, e.g. teacher-layers:2,4,6") from exc
    depth = teacher.config.num_hidden_layers
    bad = [x for x in layers if not 1 <= x <= depth]
    if not layers or bad:
        raise ConfigError(f"student '{spec}': teacher layers are numbered 1..{depth}; got {layers}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = model_class(config)
    source, target = getattr(teacher, "bert", teacher), getattr(student, "bert", student)
    target.embeddings.load_state_dict(source.embeddings.state_dict())
    for position, layer in enumerate(layers):
        target.encoder.layer[position].load_state_dict(source.encoder.layer[layer - 1].state_dict())
    if source.pooler is not None and target.pooler is not None:
        target.pooler.load_state_dict(source.pooler.state_dict())
    for name, head in teacher.named_children():  # the task head (classifier, qa_outputs, ...) comes along too
        if name != "bert" and isinstance(getattr(student, name, None), type(head)):
            getattr(student, name).load_state_dict(head.state_dict())
    from tinybert_edge.distillation.teacher_init import StudentShape, describe

    student.config.student_init = describe("teacher-layers", StudentShape.from_config(config).name, layers=layers)
    log.info("student: teacher layers %s copied (width %d)", layers, config.hidden_size)
    return student
