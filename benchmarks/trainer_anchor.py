"""The transformers Trainer as the anchor for training throughput: fine-tuning and task distillation run the way a
user of the Hugging Face stack would run them, on the same model, tokens, batch size, steps, schedule and precision
as our loop, so that a samples/s ratio from one run compares the loops and nothing else.

- Fine-tuning: `Trainer` with `group_by_length=True`, the model's own cross-entropy, AdamW (the Trainer's default
  `adamw_torch`), linear warm-up over the same number of steps then decay, gradient clipping at 1.0, and `bf16=True`
  when the precision is bf16.
- Task distillation: `LossTermsTrainer`, a Trainer whose loss is the SDK's own loss terms
  (tinybert_edge.distillation's IntermediateObjective for stage 1; the task's prediction loss against the teacher's
  logits, computed per batch under no_grad, for stage 2), one Trainer per stage as TinyBERT trains them.

Both pad each batch to its longest member with the SDK's collate (what a user's DataCollatorWithPadding does).
Throughput is the examples trained over the Trainer's own `train_runtime`; dev accuracy is scored by the same
evaluation code as ours, on the model the Trainer leaves.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def _require_trainer() -> Any:
    from tinybert_edge.errors import MissingDependencyError

    try:
        import accelerate  # noqa: F401  (the Trainer refuses to start without it)
        from transformers import Trainer
    except ImportError as exc:
        raise MissingDependencyError(f"the Trainer anchor needs transformers and accelerate ({exc}); "
                                     "pip install 'tinybert-edge[train]'") from exc
    return Trainer


class _Rows:
    """A map-style dataset of row indices into an EncodedData; `input_ids` is there for group_by_length's lengths."""

    def __init__(self, encoded: Any) -> None:
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": index, "input_ids": self.encoded.input_ids[index]}


def _collator(encoded: Any) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    import torch

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = encoded.collate([row["index"] for row in rows])
        return {name: torch.from_numpy(value) for name, value in batch.items()}

    return collate


def training_arguments(work: Path, *, batch_size: int, learning_rate: float, weight_decay: float, warmup_ratio: float,
                       examples: int, epochs: float, precision: str, seed: int) -> Any:
    """TrainingArguments matching our LoopSpec: the same batch, steps, warm-up steps, schedule, clipping, precision."""
    from transformers import TrainingArguments

    if precision not in ("fp32", "bf16"):
        raise ValueError(f"the Trainer anchor runs fp32 or bf16 on a CPU, not {precision!r}")
    total_steps = math.ceil(round(epochs * math.ceil(examples / batch_size)))
    return TrainingArguments(
        output_dir=str(work), per_device_train_batch_size=batch_size, num_train_epochs=epochs,
        learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=int(warmup_ratio * total_steps),
        lr_scheduler_type="linear", max_grad_norm=1.0, group_by_length=True, bf16=precision == "bf16",
        use_cpu=True, seed=seed, data_seed=seed, logging_steps=20, save_strategy="no", eval_strategy="no",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
    )


def _loss_terms_trainer() -> Any:
    Trainer = _require_trainer()

    class LossTermsTrainer(Trainer):
        """A Trainer whose loss is `loss_terms(batch)["total"]`: the SDK's own loss functions, not a re-derivation."""

        def __init__(self, *args: Any, loss_terms: Callable[[dict[str, Any]], dict[str, Any]], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.loss_terms = loss_terms

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            terms = self.loss_terms(inputs)
            return (terms["total"], terms) if return_outputs else terms["total"]

    return LossTermsTrainer


def _train(trainer: Any, examples: int) -> dict[str, Any]:
    import torch
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every logged loss dict to stdout (disable_tqdm puts it there)
    output = trainer.train()
    seconds = float(output.metrics["train_runtime"])
    return {"examples": examples, "seconds": seconds, "samples_per_second": examples / seconds,
            "steps": int(output.global_step), "final_loss": float(output.training_loss),
            "threads": torch.get_num_threads()}


def trainer_finetune(encoder: Path, train: Any, dev: Any, *, batch_size: int, learning_rate: float,
                     weight_decay: float, warmup_ratio: float, epochs: float, max_length: int, precision: str,
                     seed: int, work: Path) -> dict[str, Any]:
    """Fine-tune `encoder` on `train` with the Trainer (group_by_length); its samples/s and dev metrics."""
    import torch

    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import load_model, load_tokenizer
    from tinybert_edge.runtime.sessions import TorchSession
    from tinybert_edge.tasks import get_task

    Trainer = _require_trainer()
    task = get_task(train.task)
    tokenizer = load_tokenizer(encoder)
    torch.manual_seed(seed)  # the new head starts where our finetune's does
    model = load_model(encoder, task, label_names=getattr(train, "label_names", None), role="teacher")
    encoded = task.encode(tokenizer, train, max_length)
    args = training_arguments(work, batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay,
                              warmup_ratio=warmup_ratio, examples=len(encoded), epochs=epochs, precision=precision,
                              seed=seed)
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(encoded), data_collator=_collator(encoded))
    result = _train(trainer, round(epochs * len(encoded)))
    model = trainer.model.to("cpu").float().eval()
    encoded_dev = task.encode(tokenizer, task.align(dev, model.config), max_length)
    result["dev_metrics"] = evaluate_session(TorchSession(encoder, model=model, task=task), encoded_dev).metrics
    result["optimizer"] = args.optim if isinstance(args.optim, str) else args.optim.value
    return result


def trainer_task_distill(teacher: Path, train: Any, dev: Any, config: Any, work: Path) -> dict[str, Any]:
    """Stage 1 then stage 2 of task distillation (`config`, a DistillConfig) with one LossTermsTrainer per stage,
    computing the SDK's loss terms; the student starts where our distill()'s does."""
    import torch

    from tinybert_edge.distillation.distiller import IntermediateObjective
    from tinybert_edge.distillation.layer_map import layer_map
    from tinybert_edge.distillation.student import build_student, is_teacher_init
    from tinybert_edge.distillation.task_distillation import prediction_terms
    from tinybert_edge.distillation.teacher_init import IMPORTANCE_EXAMPLES
    from tinybert_edge.data import sample
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import load_model, load_tokenizer
    from tinybert_edge.runtime.sessions import TorchSession
    from tinybert_edge.tasks import get_task

    LossTermsTrainer = _loss_terms_trainer()
    task = get_task(train.task)
    started = time.perf_counter()
    teacher_model = load_model(teacher, task, label_names=getattr(train, "label_names", None), role="teacher")
    train, dev = task.align(train, teacher_model.config), task.align(dev, teacher_model.config)
    tokenizer = load_tokenizer(teacher)
    torch.manual_seed(config.seed)
    importance = (task.encode(tokenizer, sample(train, IMPORTANCE_EXAMPLES, config.seed), config.max_length)
                  if is_teacher_init(config.student) else None)
    student = build_student(config.student, teacher_model, task=task, importance_data=importance, tokenizer=tokenizer)
    mapping = layer_map(student.config.num_hidden_layers, teacher_model.config.num_hidden_layers, config.layer_map)
    intermediate = IntermediateObjective(student, teacher_model, mapping, config, torch.device("cpu"))
    train = sample(train, config.max_train_examples, config.seed)
    encoded = task.encode(tokenizer, train, config.max_length)
    common = dict(batch_size=config.batch_size, weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio,
                  examples=len(encoded), precision=config.precision, seed=config.seed)
    stages: dict[str, Any] = {"setup_s": time.perf_counter() - started}

    if config.intermediate_epochs > 0:
        args = training_arguments(work / "intermediate", learning_rate=config.learning_rate,
                                  epochs=config.intermediate_epochs, **common)
        trainer = LossTermsTrainer(model=intermediate.distiller, args=args, train_dataset=_Rows(encoded),
                                   data_collator=_collator(encoded), loss_terms=intermediate)
        stages["intermediate"] = _train(trainer, round(config.intermediate_epochs * len(encoded)))
    intermediate.remove()

    def prediction(batch: dict[str, Any]) -> dict[str, Any]:
        with torch.no_grad():
            teacher_outputs = task.forward(teacher_model, batch)
        return prediction_terms(task, student, teacher_outputs, batch, config)

    if config.prediction_epochs > 0:
        args = training_arguments(work / "prediction", learning_rate=config.prediction_learning_rate or
                                  config.learning_rate, epochs=config.prediction_epochs, **common)
        trainer = LossTermsTrainer(model=student, args=args, train_dataset=_Rows(encoded),
                                   data_collator=_collator(encoded), loss_terms=prediction)
        stages["prediction"] = _train(trainer, round(config.prediction_epochs * len(encoded)))
    student = student.to("cpu").float().eval()
    encoded_dev = task.encode(tokenizer, dev, config.max_length)
    stages["dev_metrics"] = evaluate_session(TorchSession(teacher, model=student, task=task), encoded_dev).metrics
    return stages
