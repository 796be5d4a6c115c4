"""Tasks behind one seam (`Task`, see tasks/base.py and docs/tasks.md): a name picks the task, a model folder's
config.json or an artifact's metadata says which task it was trained for.

Adding a task means adding one module with a `Task` subclass and registering it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from tinybert_edge.errors import ConfigError, ModelError
from tinybert_edge.registry import Registry
from tinybert_edge.tasks.base import Task, read_model_config

TASKS: Registry[type[Task]] = Registry("task")
TASKS.register("text-classification", "tinybert_edge.tasks.classification:SequenceClassification")
TASKS.register("regression", "tinybert_edge.tasks.regression:SequenceRegression")
TASKS.register("embedding", "tinybert_edge.tasks.embedding:EmbeddingTask")
TASKS.register("token-classification", "tinybert_edge.tasks.token_classification:TokenClassification")
TASKS.register("question-answering", "tinybert_edge.tasks.question_answering:QuestionAnswering")

DEFAULT_TASK = "text-classification"
# Short names a user may type (`--task ner`); records always carry the registered name.
TASK_ALIASES = {"ner": "token-classification", "qa": "question-answering"}


def task_name(name: str | None) -> str:
    """The registered task a name stands for: a task name itself, an alias ("ner" -> "token-classification", "qa" ->
    "question-answering") or a GLUE preset name ("stsb" -> "regression", "sst2" -> "text-classification"); None is
    the default task. ConfigError for any other name, listing what is accepted."""
    from tinybert_edge.config import TASK_DEFAULTS, is_preset, preset_task

    if name is None:
        return DEFAULT_TASK
    if name in TASKS:
        return name
    if name in TASK_ALIASES:
        return TASK_ALIASES[name]
    if is_preset(name):
        return preset_task(name)
    raise ConfigError(f"unknown task {name!r}; available: {', '.join(TASKS.names())}, the aliases "
                      f"{', '.join(TASK_ALIASES)}, or a GLUE preset name ({', '.join(TASK_DEFAULTS)})")


def get_task(name: str | Task | None = DEFAULT_TASK) -> Task:
    """The task registered under `name`, its alias, or the one a GLUE preset name implies (a Task instance is
    returned as it is; None is the default task)."""
    if isinstance(name, Task):
        return name
    return TASKS.get(task_name(name))()


def task_of_config(config: Mapping[str, Any], where: str = "the model") -> Task:
    """The task whose fine-tuned models look like this config.json (a dict); ModelError when none does."""
    for name in TASKS:
        task = get_task(name)
        if task.matches(config):
            return task
    known = ", ".join(f"{name} ({get_task(name).architecture})" for name in TASKS)
    raise ModelError(f"{where} is not a fine-tuned model of any known task (architectures "
                     f"{config.get('architectures')}); known tasks: {known}; fine-tune or distil the encoder first")


def task_of_model(model: Any) -> Task:
    """The task of an in-memory transformers model (from its class and config, as its config.json would say)."""
    config = {**model.config.to_dict(), "architectures": [type(model).__name__]}
    return task_of_config(config, f"the model {type(model).__name__}")


def task_of(folder: str | Path) -> Task:
    """The task of the fine-tuned model folder `folder` (from its config.json)."""
    return task_of_config(read_model_config(folder), f"the model folder '{folder}'")


__all__ = ["DEFAULT_TASK", "TASKS", "TASK_ALIASES", "Task", "get_task", "task_name", "task_of", "task_of_config",
           "task_of_model"]
