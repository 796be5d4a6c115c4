"""tinybert-edge: distil a fine-tuned BERT teacher into a TinyBERT student and ship it to edge devices.

The public API has the same names as the command line (`tinybert-edge pipeline`, `distill`, `export`, ...).
Everything heavy is imported on first use, so `import tinybert_edge` and `tinybert-edge --help` stay instant.
"""

from __future__ import annotations

import importlib
from typing import Any

from tinybert_edge.version import __version__

_API = {
    "pipeline": "tinybert_edge.app.pipeline:pipeline",
    "finetune": "tinybert_edge.training.finetune:finetune",
    "distill": "tinybert_edge.distillation.task_distillation:distill",
    "general_distill": "tinybert_edge.distillation.general:general_distill",
    "augment": "tinybert_edge.distillation.augment:augment",
    "export": "tinybert_edge.converters.chain:export",
    "evaluate": "tinybert_edge.evaluation:evaluate",
    "bench": "tinybert_edge.benchmarks.runner:bench",
    "package": "tinybert_edge.app.bundle:package",
    "verify": "tinybert_edge.runtime.bundle:verify",
    "load_bundle": "tinybert_edge.runtime.bundle:load_bundle",
    "load_data": "tinybert_edge.data:load_data",
    "PipelineConfig": "tinybert_edge.config:PipelineConfig",
    "DistillConfig": "tinybert_edge.config:DistillConfig",
    "FinetuneConfig": "tinybert_edge.config:FinetuneConfig",
    "GeneralDistillConfig": "tinybert_edge.config:GeneralDistillConfig",
    "AugmentConfig": "tinybert_edge.config:AugmentConfig",
}

# Names that need the training stack (torch, transformers): without it they raise MissingDependencyError naming the
# extra, instead of an ImportError deep inside; the bundle runtime (load_bundle, verify) never needs it.
_TRAINING = ("pipeline", "finetune", "distill", "general_distill", "augment", "export", "evaluate", "bench")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'tinybert_edge' has no attribute '{name}'")
    if name in _TRAINING:
        from tinybert_edge.errors import require_training_stack

        require_training_stack(f"tinybert_edge.{name}")
    module, _, attribute = _API[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
