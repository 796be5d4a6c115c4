"""Task distillation: stage 1 fits the student's embeddings, attention and hidden states to the teacher's;
stage 2 fits its predictions (TinyBERT section 3.3), keeping the student with the best dev score.

What differs between tasks (the head, the prediction-layer loss, the dev metric) comes from the data's Task."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinybert_edge.config import DistillConfig, task_defaults
from tinybert_edge.data import sample
from tinybert_edge.errors import ConfigError, DistillationError, RunDirExistsError
from tinybert_edge.io import write_json_atomic

# Beside the checkpoints in the work folder: the settings they were written with, so that a resume with other
# settings can be refused naming the settings that differ (the checkpoint itself only carries their digest).
SETTINGS_FILE = "distill_settings.json"
# The settings only stage 2 reads. A resume that changes only these keeps stage 1's checkpoint (its result does not
# depend on them) and starts stage 2 over: the paper's recipe tunes the prediction stage on one intermediate model.
PREDICTION_ONLY = ("metric", "prediction_epochs", "prediction_learning_rate", "temperature", "prediction_weight",
                   "hard_label_weight", "cache_teacher_logits", "eval_every")

log = logging.getLogger(__name__)


@dataclass
class DistillResult:
    student_dir: Path
    dev_metrics: dict[str, float]
    primary_metric: str = "accuracy"
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The dev metric that selected the checkpoint (DistillConfig.metric, else the primary metric).
    selection_metric: str | None = None
    layer_map: list[int] = field(default_factory=list)
    parameters: int = 0
    # How the student was made before distillation (config.student_init): its name, method and details.
    student_init: dict[str, Any] = field(default_factory=dict)

    @property
    def dev_score(self) -> float:
        """The task's primary dev metric (what selected the checkpoint)."""
        return self.dev_metrics[self.primary_metric]

    @property
    def dev_accuracy(self) -> float | None:
        return self.dev_metrics.get("accuracy")



def prediction_terms(task: Any, student: Any, teacher_outputs: Any, batch: dict[str, Any],
                     config: DistillConfig) -> dict[str, Any]:
    """The prediction-layer loss terms of one batch (the task's soft loss against the teacher's outputs, and the hard
    label loss where configured) and their weighted `total`; the SDK's loop and the Trainer anchor share it."""
    terms = task.prediction_loss(task.forward(student, batch), teacher_outputs, batch, config)
    weights = {"prediction": config.prediction_weight, "hard_label": config.hard_label_weight}
    terms["total"] = sum(weights[name] * value for name, value in terms.items())
    return terms

def distill(
    teacher: str | Path,
    train: Any,
    dev: Any,
    out_dir: str | Path,
    config: DistillConfig = DistillConfig(),
    work_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
) -> DistillResult:
    """Distil the fine-tuned model in `teacher` (of the data's task) into a student saved at `out_dir`.

    The best stage-2 checkpoint on `dev` is kept, by `config.metric` (a task preset sets it: Matthews correlation
    for CoLA, F1 for MRPC, Spearman for STS-B) or else the task's primary metric; distill.json records which.

    `work_dir` holds checkpoints and the loss log (JSONL, one line per logged step and term); with `resume`, each
    stage continues from its last checkpoint, which must come from the same configuration. An existing `out_dir`
    is replaced only with `overwrite` (or `resume`, which finishes what a previous call started there).
    """
    import torch

    from tinybert_edge.distillation.distiller import IntermediateObjective
    from tinybert_edge.distillation.layer_map import layer_map
    from tinybert_edge.distillation.student import build_student, is_teacher_init
    from tinybert_edge.distillation.teacher_init import IMPORTANCE_EXAMPLES
    from tinybert_edge.training.loop import LoopSpec, init_distributed, pick_device, run_loop
    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import count_parameters, load_model, load_tokenizer, save_model
    from tinybert_edge.runtime.sessions import TorchSession
    from tinybert_edge.tasks import get_task

    task = get_task(train.task)

    context = init_distributed()
    if config.task:
        preset = {k: v for k, v in task_defaults(config.task).items() if getattr(config, k) == v}
        log.info("distill: task preset %s in effect for %s", config.task,
                 ", ".join(f"{k}={v}" for k, v in preset.items()) or "nothing (every value overridden)")
    from tinybert_edge.io import check_output_location

    if Path(out_dir).exists() and not (overwrite or resume):
        raise RunDirExistsError(f"student folder '{out_dir}' already exists; pass --overwrite to replace it, "
                                "--resume to finish the run that wrote it, or choose another output folder")
    check_output_location(out_dir, "student folder")  # fail before loading anything, not after training
    from tinybert_edge.training.precision import resolve_precision

    precision = resolve_precision(config.precision, pick_device())  # refused before loading, not after
    if work_dir:
        check_output_location(work_dir, "work folder")
    task.check_training_data(train, "training")
    selection = config.metric or task.primary_metric
    allowed = task.selection_metrics(train)
    if selection not in allowed:
        raise ConfigError(f"distill.metric = {selection!r} cannot select checkpoints of this {task.name} data; "
                          f"allowed: {', '.join(allowed)}; set metric= (--metric) to one of them")
    from tinybert_edge.models import resolve_model_path

    teacher = resolve_model_path(teacher, "teacher")  # one folder for loading and for the checkpoint digest
    teacher_model = load_model(teacher, task, label_names=getattr(train, "label_names", None), role="teacher")
    train, dev = task.align(train, teacher_model.config), task.align(dev, teacher_model.config)
    tokenizer = load_tokenizer(teacher)
    torch.manual_seed(config.seed)  # a randomly initialised student and the projections are part of the recipe
    # A student initialised from the teacher ranks the teacher's units on a sample of the training texts.
    importance = (task.encode(tokenizer, sample(train, IMPORTANCE_EXAMPLES, config.seed), config.max_length)
                  if is_teacher_init(config.student) else None)
    student = build_student(config.student, teacher_model, task=task, importance_data=importance, tokenizer=tokenizer)
    task.check_student(student.config, teacher_model.config, config)  # before any training
    student_init = dict(student.config.student_init)
    mapping = layer_map(student.config.num_hidden_layers, teacher_model.config.num_hidden_layers, config.layer_map)
    log.info("distill: student %s (%s; %d layers, width %d, %.1fM parameters), layer map %s, attention loss %s",
             config.student, student_init["name"], student.config.num_hidden_layers, student.config.hidden_size,
             count_parameters(student) / 1e6, mapping, config.attention_loss)

    device = pick_device()
    intermediate = IntermediateObjective(student, teacher_model, mapping, config, device)

    train = sample(train, config.max_train_examples, config.seed)
    encoded_train = task.encode(tokenizer, train, config.max_length)
    encoded_dev = task.encode(tokenizer, dev, config.max_length)
    work = Path(work_dir) if work_dir else None
    if work:
        work.mkdir(parents=True, exist_ok=True)
    from tinybert_edge.training.finetune import data_digest
    from tinybert_edge.io import sha256_tree

    # A checkpoint may only be resumed by a run with the same settings, teacher weights and training data.
    settings = json.loads(json.dumps({"config": asdict(config), "train": data_digest(train),  # as saved: lists
                                      "teacher": sha256_tree(Path(teacher), ("*.json", "*.safetensors"))}))
    digests = dict.fromkeys(("intermediate", "prediction"), _digest(settings))
    if work:
        digests = _check_resume(work, settings, resume, context.is_main)

    cached_logits: torch.Tensor | None = None

    def prediction(batch):
        if cached_logits is not None:
            teacher_outputs = cached_logits[batch["index"]]
            if task.per_token:  # cached at the longest example's length; this batch is padded to its own
                teacher_outputs = teacher_outputs[:, : batch["input_ids"].shape[1]]
        else:
            with torch.no_grad():
                teacher_outputs = task.forward(teacher_model, batch)
        return prediction_terms(task, student, teacher_outputs, batch, config)

    def dev_metrics() -> dict[str, float]:
        # TorchSession feeds CPU tensors: evaluate on the CPU, then put the student back where it trains.
        where = next(student.parameters()).device
        student.to("cpu").eval()
        try:
            return evaluate_session(TorchSession(Path(out_dir), model=student, task=task), encoded_dev).metrics
        finally:
            student.to(where)

    def dev_score() -> float:
        return dev_metrics()[selection]

    stages: dict[str, dict[str, Any]] = {}
    common = dict(batch_size=config.batch_size, weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio,
                  accumulation=config.gradient_accumulation, seed=config.seed, log_every=config.log_every,
                  checkpoint_every=config.checkpoint_every, max_length=config.max_length,
                  length_grouping=config.length_grouping, precision=config.precision)
    if config.intermediate_epochs > 0:
        spec = LoopSpec(name="intermediate", epochs=config.intermediate_epochs, learning_rate=config.learning_rate, **common)
        result = run_loop(spec, intermediate.distiller, intermediate, encoded_train, device=device, work_dir=work,
                          resume=resume, digest=digests["intermediate"], progress=progress)
        stages["intermediate"] = _stage_summary(result, selection)
    intermediate.remove()
    if config.prediction_epochs > 0:
        cache_seconds = 0.0
        if config.cache_teacher_logits:
            # The teacher is frozen and in eval mode, so its logits are the same every epoch: compute them once.
            t0 = time.perf_counter()
            with torch.autocast(device_type=device.type, dtype=precision.dtype or torch.float32,
                                enabled=precision.autocast):  # the precision the stage trains in
                cached_logits = teacher_outputs_for(task, teacher_model, encoded_train, device, config.batch_size,
                                                    progress=progress)
            cache_seconds = time.perf_counter() - t0
        spec = LoopSpec(name="prediction", epochs=config.prediction_epochs, eval_every=config.eval_every,
                        learning_rate=config.prediction_learning_rate or config.learning_rate, **common)
        result = run_loop(spec, student, prediction, encoded_train, device=device, work_dir=work,
                          evaluate=dev_score, resume=resume, digest=digests["prediction"], progress=progress)
        stages["prediction"] = {**_stage_summary(result, selection), "teacher_logits_seconds": round(cache_seconds, 2)}
    student.to("cpu").eval()
    metrics = dev_metrics()
    summary = DistillResult(student_dir=Path(out_dir), dev_metrics=metrics, primary_metric=task.primary_metric,
                            stages=stages, selection_metric=selection, layer_map=mapping,
                            parameters=count_parameters(student), student_init=student_init)
    if context.is_main:  # every process holds the same student; one writes it
        task.record_settings(student.config, train)
        save_model(student, tokenizer, out_dir)
        write_json_atomic(Path(out_dir) / "distill.json", {
            "teacher": str(teacher), "task": task.name, "config": asdict(config), "layer_map": mapping,
            "dev_metrics": metrics, "primary_metric": task.primary_metric, "selection_metric": selection,
            "dev_accuracy": metrics.get("accuracy"),
            "train_examples": len(train), "stages": stages, "parameters": summary.parameters,
            "student_init": student_init,
            "processes": context.world,
        })
        log.info("distill: student dev %s %.4f, saved to %s", task.primary_metric, summary.dev_score, out_dir)
    if context.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return summary


def _check_resume(work: Path, settings: dict[str, Any], resume: bool, is_main: bool) -> dict[str, str]:
    """Say what a resume will do, and refuse one whose settings differ from the checkpoints' in anything stage 1
    reads, naming each setting that differs; then record this run's settings beside its checkpoints.

    Returns the digest each stage's checkpoint must carry. When only PREDICTION_ONLY settings differ, stage 1
    resumes from its checkpoint under the digest it was written with, and stage 2 starts over under the new
    settings' digest; its old checkpoint is kept beside, renamed, not loaded."""
    current = _digest(settings)
    digests = {"intermediate": current, "prediction": current}
    checkpoints = sorted(work.glob("*.ckpt"))
    saved_path = work / SETTINGS_FILE
    changed: list[str] = []
    if resume and not checkpoints:
        log.info("distill: --resume, but there is no checkpoint in %s yet; starting fresh", work)
    elif resume and saved_path.is_file():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        differences = {key: f"{key}: {saved['config'].get(key)!r} then, {value!r} now"
                       for key, value in settings["config"].items() if saved.get("config", {}).get(key) != value}
        if saved.get("train") != settings["train"]:
            differences["train"] = "the training data (--data, its reading options or --max-train-examples)"
        if saved.get("teacher") != settings["teacher"]:
            differences["teacher"] = "the teacher's weights"
        if any(key not in PREDICTION_ONLY for key in differences):
            raise DistillationError(
                f"cannot resume from the checkpoints in '{work}': they were written with other settings "
                f"({'; '.join(differences.values())}); rerun with the same settings, or start over with --overwrite"
            )
        # A settings file from before stage digests existed: both stages carry the digest of its settings.
        digests = dict(saved.get("digests") or dict.fromkeys(digests, _digest(
            {key: saved.get(key) for key in ("config", "train", "teacher")})))
        changed = list(differences.values())
        if changed:
            digests["prediction"] = current
            stale = work / "prediction.ckpt"
            kept = work / f"prediction.ckpt.{_digest(saved)[:12]}.superseded"
            if is_main and stale.exists():
                stale.replace(kept)
            log.info("distill: stage 2's settings changed (%s): stage 1 continues from its checkpoint, stage 2 "
                     "starts over%s", "; ".join(changed),
                     f" (its old checkpoint kept as {kept.name})" if kept.exists() else "")
    if is_main and (changed or not (resume and checkpoints)):
        write_json_atomic(saved_path, {**settings, "digests": digests})
    return digests


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def teacher_outputs_for(task, teacher_model, encoded, device, batch_size: int, progress: bool = False):
    """The teacher's output arrays for every example of `encoded`, in its order (length-sorted batches, inference
    mode). Per-token outputs are kept at the longest example's length, so any batch's rows can be sliced out.
    Progress: a bar on a terminal, else a plain line at least every 30 s (minutes for long QA windows)."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from tinybert_edge.training.loop import ProgressLog, batch_to_tensors

    order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")
    longest = max(len(ids) for ids in encoded.input_ids)
    log.info("prediction: the teacher's outputs on %d examples, computed once and reused every epoch", len(order))
    bar = tqdm(total=len(order), desc="teacher outputs", unit="example",
               disable=not progress or not sys.stderr.isatty(), dynamic_ncols=True)
    heartbeat = ProgressLog("teacher outputs", 0, len(order), enabled=bar.disable)
    result = None
    with torch.inference_mode(), bar:
        for start in range(0, len(order), batch_size * 4):
            chosen = order[start : start + batch_size * 4].tolist()
            outputs = task.forward(teacher_model, batch_to_tensors(encoded.collate(chosen), device)).float()
            if result is None:
                shape = (len(encoded), longest, *outputs.shape[2:]) if task.per_token else (len(encoded), *outputs.shape[1:])
                result = torch.zeros(shape, device=device)
            if task.per_token:
                result[chosen, : outputs.shape[1]] = outputs
            else:
                result[chosen] = outputs
            bar.update(len(chosen))
            heartbeat.update(start + len(chosen))
    return result.clone()  # a normal tensor: inference-mode tensors cannot take part in autograd


def _stage_summary(result, metric: str) -> dict[str, Any]:
    last = next((h for h in reversed(result.history) if "total" in h), {})
    return {"steps": result.steps, "seconds": round(result.seconds, 2), "examples": result.examples,
            "examples_per_second": round(result.examples_per_second, 2), "precision": result.precision,
            "evaluation_seconds": round(result.evaluation_seconds, 2), f"best_dev_{metric}": result.best_score,
            "best_step": result.best_step, "final_loss": {k: v for k, v in last.items() if k not in ("stage", "step", "epoch", "lr")},
            "phase_seconds": result.phase_seconds,
            **({} if result.whole_cost else {"cost_covers": "the steps trained after resuming from a checkpoint "
                                                              "without recorded costs"})}
