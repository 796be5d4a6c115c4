"""Tasks behind one seam (`Task`, see tasks/base.py and docs/tasks.md): a name picks the task, a model folder's
config.json or an artifact's metadata says which task it was trained for.

Adding a task means adding one module with a `Task` subclass and registering it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from tinybert_edge.errors import ModelError
from tinybert_edge.registry import Registry
from tinybert_edge.tasks.base import Task, read_model_config

TASKS: Registry[type[Task]] = Registry("task")
TASKS.register("text-classification", "tinybert_edge.tasks.classification:SequenceClassification")
TASKS.register("token-classification", "tinybert_edge.tasks.token_classification:TokenClassification")
TASKS.register("question-answering", "tinybert_edge.tasks.question_answering:QuestionAnswering")

DEFAULT_TASK = "text-classification"
# Short names a user may type (`--task ner`); records always carry the registered name.
TASK_ALIASES = {"ner": "token-classification", "qa": "question-answering"}


def task_name(name: str) -> str:
    """The registered name of `name` (an alias such as "ner" resolved); ConfigError for an unknown name."""
    resolved = TASK_ALIASES.get(name, name)
    TASKS.get(resolved)  # raises "unknown task 'x'; available: ..."
    return resolved


def get_task(name: str | Task = DEFAULT_TASK) -> Task:
    """The task registered under `name` or its alias (a Task instance is returned as it is)."""
    if isinstance(name, Task):
        return name
    return TASKS.get(TASK_ALIASES.get(name, name))()


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
    config = {"architectures": [type(model).__name__], "problem_type": getattr(model.config, "problem_type", None)}
    return task_of_config(config, f"the model {type(model).__name__}")


def task_of(folder: str | Path) -> Task:
    """The task of the fine-tuned model folder `folder` (from its config.json)."""
    return task_of_config(read_model_config(folder), f"the model folder '{folder}'")


__all__ = ["DEFAULT_TASK", "TASKS", "TASK_ALIASES", "Task", "get_task", "task_name", "task_of", "task_of_config",
           "task_of_model"]
