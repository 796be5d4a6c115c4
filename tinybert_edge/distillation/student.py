"""Building the student: a named TinyBERT shape, any BertConfig, a subset of the teacher's own layers, or a folder.

Student specs (strings, so they fit a CLI flag and a TOML file):
- "tinybert-4l-312h", "tinybert-6l-768h": the paper's shapes, randomly initialised, teacher's vocabulary;
- "teacher-layers:2,4,6": the teacher's embeddings and these encoder layers (1-based), copied, same width;
- "config:<path to config.json>": any BertConfig;
- a folder path: a student saved earlier (for example one that went through general distillation).
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


def build_student(spec: str, teacher: Any, head: bool = True, task: Any = None) -> Any:
    """Return a student for `teacher`: a model of `task` (the teacher's task when None) with the teacher's head
    settings (labels), or with `head=False` (general distillation from a pre-trained encoder) a bare BertModel."""
    from transformers import BertModel

    from tinybert_edge.tasks import get_task, task_of_model

    if head:
        task = get_task(task) if task is not None else task_of_model(teacher)
        model_class = task.model_class()
        labels = task.head_config(task.label_names(teacher.config)) or {}
    else:
        model_class, labels = BertModel, {}
    if spec in STUDENT_PRESETS:
        config = _student_config(teacher.config, STUDENT_PRESETS[spec], labels)
        log.info("student: preset %s, randomly initialised", spec)
        return model_class(config)
    if spec.startswith("teacher-layers:"):
        return _layer_subset(spec, teacher, model_class)
    if spec.startswith("config:"):
        path = resolve_path(spec[len("config:") :])
        try:
            overrides = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"student config '{path}' is not a readable JSON BertConfig: {exc}") from exc
        config = _student_config(teacher.config, overrides, labels)
        return model_class(config)
    path = resolve_path(spec)
    if path.exists():
        # A general-distilled student is a bare encoder: its task head starts from scratch here.
        folder = check_model_folder(path, role="student")
        student = model_class.from_pretrained(
            folder, **labels, ignore_mismatched_sizes=head, use_safetensors=(folder / "model.safetensors").is_file()
        )
        check_vocabulary(student.config, teacher.config)
        log.info("student: loaded from %s", folder)
        return student
    raise ConfigError(
        f"unknown student '{spec}'; use one of {', '.join(STUDENT_PRESETS)}, 'teacher-layers:1,3,5', "
        "'config:<config.json>' or a student model folder"
    )


def _student_config(teacher_config: Any, shape: dict[str, Any], labels: dict[str, Any]) -> Any:
    from transformers import BertConfig

    base = teacher_config.to_dict()
    for key in ("architectures", "_name_or_path", "transformers_version", "id2label", "label2id"):
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
    log.info("student: teacher layers %s copied (width %d)", layers, config.hidden_size)
    return student
