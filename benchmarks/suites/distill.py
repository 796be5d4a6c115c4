"""The `distill` suite: our distillation engine and augmentation against loops written the way the released
TinyBERT code does them, on the same teacher, student, data and thread count, in one run.

    python -m tinybert_edge.benchmarks.suites.distill [--teacher DIR] [--examples 256] [--aug-sentences 200]

- Task distillation (stage 1 intermediate layers, then stage 2 prediction layer, one epoch each): our
  `tinybert_edge.distillation.task_distillation.distill` against `reference_task_distill` below: every batch padded to
  max_seq_length 128, teacher forward with autograd, attention scores with the padding mask added and zeroed
  again by `torch.where(score <= -1e2, 0, score)`, one MSE per layer and term, a shared `fit_dense` projection, plain
  AdamW. Throughput counts the examples each stage trains on over the time of the two training loops (ours
  includes the one teacher pass that caches its logits); the end-to-end ratio (loading, our dev evaluation and
  saving included) is reported beside it.
- Augmentation: our `tinybert_edge.distillation.augment.augment` against `reference_augment_sentence` (one model call
  per word with batch size 1 and autograd on, whole-vocabulary LM head on every position, as the released
  data_augmentation.py). Twice: with the teacher itself (no masked-LM head, so embedding neighbours for every word),
  and with a masked-LM model of the teacher's shape, so that the single-piece words go through a masked LM. No
  masked-LM checkpoint of this encoder ships offline, so that model is the teacher's encoder with BERT's LM head
  (decoder tied to the input embeddings, transform freshly initialised): its candidates are not meaningful, its
  cost is exactly that of a real one, and it only serves the timing. The reference is timed on a subset of the
  sentences and reported per sentence.
- Trainer anchor (issue 18): the transformers Trainer with `group_by_length` (benchmarks/trainer_anchor.py) against
  our loop, for fine-tuning the default teacher's encoder (all-MiniLM-L6-v2) and for task distillation of the teacher
  that fine-tuning gives (a Trainer subclass computing the SDK's own loss terms), on the same SST-2 sample, max length,
  batch, steps and precision: fp32, and bf16 where the CPU runs it natively. Samples/s over each loop's training time
  (dev evaluation excluded, our one teacher-logits pass included), and dev accuracy of both on the same dev set.
  Beside each: our loop's seconds in the model's forward and backward passes (the loop times its phases on a CPU),
  and the Trainer's seconds over them, the most any loop on those passes could gain over the Trainer.
Writes benchmarks/results/distill.json; the targets are 3x on the first two and 1.5x over the Trainer. A part left out
with --skip keeps its metrics from the previous results file, marked under extra.carried_over with that run's
timestamp, command and environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinybert_edge.benchmarks.results import Metric
from tinybert_edge.benchmarks.suites.command_line import SuiteOutcome, suite_main

log = logging.getLogger(__name__)

TARGET_SPEEDUP = 3.0
TARGET_OVER_TRAINER = 1.5
PARTS = ("distill", "augment", "trainer")
TRAINER_PREFIX = "Trainer anchor"


# ----------------------------------------------------------------------------------------------------------------
# Task distillation, the released code's way
# ----------------------------------------------------------------------------------------------------------------


class _QueryKeyCapture:
    """Q and K of every self-attention layer, so that the masked pre-softmax scores can be rebuilt as the released
    modeling.py returned them (Hugging Face BERT returns only probabilities)."""

    def __init__(self, model: Any) -> None:
        self.layers = [layer.attention.self for layer in model.bert.encoder.layer]
        self.outputs: dict[tuple[int, str], Any] = {}
        self.handles = []
        for index, attention in enumerate(self.layers):
            for name in ("query", "key"):
                self.handles.append(getattr(attention, name).register_forward_hook(self._keep(index, name)))

    def _keep(self, index: int, name: str):
        def hook(_module, _inputs, output):
            self.outputs[(index, name)] = output

        return hook

    def masked_scores(self, attention_mask: Any) -> list[Any]:
        """QK^T/sqrt(d) + (1 - mask) * -10000 per layer, as the released model's attention outputs."""
        extended = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        scores = []
        for index, attention in enumerate(self.layers):
            heads, size = attention.num_attention_heads, attention.attention_head_size
            q, k = self.outputs[(index, "query")], self.outputs[(index, "key")]
            batch, seq, _ = q.shape
            q = q.view(batch, seq, heads, size).transpose(1, 2)
            k = k.view(batch, seq, heads, size).transpose(1, 2)
            scores.append(q @ k.transpose(-1, -2) / math.sqrt(size) + extended)
        return scores


def reference_task_distill(teacher_dir: Path, train: Any, student_spec: str, batch_size: int, learning_rate: float,
                           max_seq_length: int = 128, teacher_autograd: bool = True, seed: int = 0) -> dict[str, Any]:
    """Stage 1 then stage 2 for one epoch each, the way the released task_distill.py trains; returns timings."""
    import torch

    from tinybert_edge.distillation.student import build_student
    from tinybert_edge.models import load_classifier, load_tokenizer
    from tinybert_edge.tasks.classification import config_label_names

    started = time.perf_counter()
    torch.manual_seed(seed)
    teacher = load_classifier(teacher_dir, label_names=train.label_names, role="teacher").eval()
    train = train.with_label_names(config_label_names(teacher.config))
    student = build_student(student_spec, teacher).train()
    fit_dense = torch.nn.Linear(student.config.hidden_size, teacher.config.hidden_size)
    tokenizer = load_tokenizer(teacher_dir)
    encoded = tokenizer(train.texts, train.text_pairs, padding="max_length", truncation=True,
                        max_length=max_seq_length, return_tensors="pt")
    n_student, n_teacher = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    per_block = n_teacher // n_student
    teacher_capture, student_capture = _QueryKeyCapture(teacher), _QueryKeyCapture(student)
    mse = torch.nn.MSELoss()

    def soft_cross_entropy(predicts, targets):
        return (-torch.nn.functional.softmax(targets, dim=-1) * torch.nn.functional.log_softmax(predicts, dim=-1)).mean()

    stages: dict[str, Any] = {"setup_s": time.perf_counter() - started}
    for stage in ("intermediate", "prediction"):
        params = list(student.parameters()) + (list(fit_dense.parameters()) if stage == "intermediate" else [])
        optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        t0, examples, totals = time.perf_counter(), 0, {"att": 0.0, "rep": 0.0, "cls": 0.0}
        for start in range(0, len(train), batch_size):
            chosen = order[start : start + batch_size]
            input_ids = encoded["input_ids"][chosen]
            input_mask = encoded["attention_mask"][chosen]
            segment_ids = encoded["token_type_ids"][chosen]
            student_out = student(input_ids=input_ids, attention_mask=input_mask, token_type_ids=segment_ids,
                                  output_hidden_states=True)
            student_atts = student_capture.masked_scores(input_mask)
            if teacher_autograd:  # as the released general_distill.py: the teacher's graph is kept and walked back
                teacher_out = teacher(input_ids=input_ids, attention_mask=input_mask, token_type_ids=segment_ids,
                                      output_hidden_states=True)
            else:  # as the released task_distill.py
                with torch.no_grad():
                    teacher_out = teacher(input_ids=input_ids, attention_mask=input_mask, token_type_ids=segment_ids,
                                          output_hidden_states=True)
            teacher_atts = teacher_capture.masked_scores(input_mask)
            if stage == "intermediate":
                att_loss, rep_loss = 0.0, 0.0
                for i, student_att in enumerate(student_atts):
                    teacher_att = teacher_atts[i * per_block + per_block - 1]
                    student_att = torch.where(student_att <= -1e2, torch.zeros_like(student_att), student_att)
                    teacher_att = torch.where(teacher_att <= -1e2, torch.zeros_like(teacher_att), teacher_att)
                    att_loss = att_loss + mse(student_att, teacher_att)
                for i, student_rep in enumerate(student_out.hidden_states):
                    rep_loss = rep_loss + mse(fit_dense(student_rep), teacher_out.hidden_states[i * per_block])
                loss = rep_loss + att_loss
                totals["att"] += att_loss.item()
                totals["rep"] += rep_loss.item()
            else:
                loss = soft_cross_entropy(student_out.logits, teacher_out.logits)
                totals["cls"] += loss.item()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            examples += len(chosen)
        stages[stage] = {"examples": examples, "seconds": time.perf_counter() - t0, "loss_sums": totals}
    stages["total_s"] = time.perf_counter() - started
    return stages


def engine_task_distill(teacher_dir: Path, train: Any, dev: Any, student_spec: str, batch_size: int,
                        learning_rate: float, work: Path) -> dict[str, Any]:
    """Our `distill` with the same settings, one epoch per stage, evaluation and checkpoints only at the end."""
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.distillation.task_distillation import distill

    config = DistillConfig(student=student_spec, batch_size=batch_size, learning_rate=learning_rate, max_length=128,
                           intermediate_epochs=1.0, prediction_epochs=1.0, eval_every=10**9, checkpoint_every=10**9,
                           max_train_examples=len(train))
    started = time.perf_counter()
    result = distill(teacher_dir, train, dev, work / "student", config, work_dir=work / "work", progress=False)
    return {"total_s": time.perf_counter() - started, "stages": result.stages, "dev_accuracy": result.dev_accuracy}


# ----------------------------------------------------------------------------------------------------------------
# Augmentation, the released code's way: one model call per word
# ----------------------------------------------------------------------------------------------------------------


def reference_augment_sentence(text: str, model: Any, tokenizer: Any, table: np.ndarray, whole: np.ndarray,
                               vocabulary: Sequence[str | None], n_augmented: int, p_t: float, top_k: int,
                               rng: np.random.Generator, max_length: int = 128) -> list[str]:
    """One sentence as data_augmentation.py does it: per word, re-tokenize, then one batch-size-1 masked-LM call
    (autograd on, LM head over every position) or one distance computation against the whole embedding table."""
    import torch

    from tinybert_edge.distillation.augment import split_words

    (sentence,) = split_words(tokenizer, [text])
    window = (max_length - 3) // 2
    candidates: dict[int, list[str]] = {}
    for w, word in enumerate(sentence.words):
        if not word.replaceable:
            continue
        pieces = tokenizer.tokenize(text)  # the released code tokenizes the sentence again for every word
        if model is not None and len(word.piece_ids) == 1 and word.first_piece < window:
            masked = list(pieces[:window])
            masked[word.first_piece] = tokenizer.mask_token
            tokens = [tokenizer.cls_token, *masked, tokenizer.sep_token, *pieces[:window], tokenizer.sep_token]
            ids = torch.tensor([tokenizer.convert_tokens_to_ids(tokens)])
            types = torch.tensor([[0] * (len(masked) + 2) + [1] * (len(masked) + 1)])
            logits = model(input_ids=ids, token_type_ids=types).logits[0, 1 + word.first_piece]
            ranked = torch.argsort(logits, descending=True).tolist()
            own = word.piece_ids[0]
            candidates[w] = [vocabulary[i] for i in ranked if whole[i] and i != own][:top_k]
        else:
            query = table[list(word.piece_ids)].mean(0)
            distance = table @ (query / np.linalg.norm(query))
            distance[list(word.piece_ids)] = -np.inf
            ranked = np.argsort(-distance)
            candidates[w] = [vocabulary[i] for i in ranked if whole[i] and i not in word.piece_ids][:top_k]
    copies = []
    for _ in range(n_augmented):
        parts, cursor = [], 0
        for w, options in candidates.items():
            if options and rng.random() < p_t:
                word = sentence.words[w]
                parts += [text[cursor : word.start], options[rng.integers(len(options))]]
                cursor = word.end
        copies.append("".join(parts) + text[cursor:])
    return copies


def reference_augment(folder: Path, texts: Sequence[str], n_augmented: int, p_t: float, top_k: int,
                      seed: int = 0) -> dict[str, Any]:
    """Time `reference_augment_sentence` over `texts`, model loading included, as our augment() is timed."""
    from tinybert_edge.distillation.augment import has_masked_lm_head, whole_word_mask
    from tinybert_edge.models import load_tokenizer

    started = time.perf_counter()
    tokenizer = load_tokenizer(folder)
    if has_masked_lm_head(folder):
        from transformers import BertForMaskedLM

        model = BertForMaskedLM.from_pretrained(folder).eval()
        embeddings = model.get_input_embeddings().weight
    else:
        from transformers import AutoModel

        model, embeddings = None, AutoModel.from_pretrained(folder).get_input_embeddings().weight
    table = embeddings.detach().numpy().astype(np.float32)
    table = table / np.linalg.norm(table, axis=1, keepdims=True)
    whole = whole_word_mask(tokenizer, table.shape[0])
    vocabulary = [None] * table.shape[0]
    for token, index in tokenizer.get_vocab().items():
        if index < len(vocabulary):
            vocabulary[index] = token
    rng = np.random.default_rng(seed)
    outputs = [reference_augment_sentence(t, model, tokenizer, table, whole, vocabulary, n_augmented, p_t, top_k, rng)
               for t in texts]
    seconds = time.perf_counter() - started
    return {"sentences": len(texts), "seconds": seconds, "rows": sum(len(o) + 1 for o in outputs)}


def timing_mlm_folder(teacher_dir: Path, out: Path) -> Path:
    """A BertForMaskedLM with the teacher's encoder and BERT's LM head (decoder tied to the input embeddings,
    transform freshly initialised): a real masked LM's cost, for timing only."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from tinybert_edge.models import load_classifier, load_tokenizer

    torch.manual_seed(0)
    teacher = load_classifier(teacher_dir, role="teacher")
    config = BertConfig(**{k: v for k, v in teacher.config.to_dict().items()
                           if k not in ("architectures", "id2label", "label2id", "num_labels")})
    config.architectures = ["BertForMaskedLM"]
    model = BertForMaskedLM(config)
    missing, _ = model.bert.load_state_dict(teacher.bert.state_dict(), strict=False)
    if [name for name in missing if not name.startswith("pooler")]:
        raise RuntimeError(f"encoder weights did not load into the masked LM: {missing}")
    model.tie_weights()
    model.save_pretrained(out, safe_serialization=True)
    load_tokenizer(teacher_dir).save_pretrained(out)
    return out


def ours_augment(folder: Path, data: Any, config: Any, cache: Path) -> dict[str, Any]:
    from tinybert_edge.distillation.augment import augment

    started = time.perf_counter()
    result = augment(folder, data, config, cache_dir=cache, progress=False)
    return {"sentences": len(data), "seconds": time.perf_counter() - started, "rows": len(result)}


# ----------------------------------------------------------------------------------------------------------------


def _pair(name: str, ours: float, reference: float, unit: str) -> dict[str, Metric]:
    return {
        f"{name}, ours": Metric(ours, unit, baseline=reference),
        f"{name}, speedup over the released-code way": Metric(ours / reference, "x", target=TARGET_SPEEDUP),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinybert_edge.benchmarks.suites.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="fine-tuned teacher folder (default: fine-tune the pipeline's default "
                        "teacher with the pipeline's settings, a cache hit after one pipeline run)")
    parser.add_argument("--student", default="teacher-layers:2,4,6", help="student spec, the same for both loops")
    parser.add_argument("--examples", type=int, default=512, help="training examples for both distillation loops")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--dev-examples", type=int, default=32, help="dev examples for our engine's final evaluation")
    parser.add_argument("--aug-sentences", type=int, default=200, help="sentences augmented by ours")
    parser.add_argument("--reference-aug-sentences", type=int, default=20,
                        help="of those, how many the one-call-per-word reference augments (reported per sentence)")
    parser.add_argument("--reference-teacher-no-grad", action="store_true",
                        help="run the reference teacher under no_grad as task_distill.py does (default: autograd on, "
                             "as general_distill.py)")
    parser.add_argument("--encoder", help="Trainer anchor: the encoder fine-tuned by both loops (default: the "
                        "pipeline's default teacher, all-MiniLM-L6-v2)")
    parser.add_argument("--trainer-data", default="../shared/data/sst2",
                        help="Trainer anchor: folder with GLUE SST-2 train.tsv and dev.tsv")
    parser.add_argument("--trainer-examples", type=int, default=2000, help="Trainer anchor: training sentences")
    parser.add_argument("--trainer-dev-examples", type=int, default=None,
                        help="Trainer anchor: dev sentences scored (default: all 872)")
    parser.add_argument("--trainer-max-length", type=int, default=64)
    parser.add_argument("--trainer-precisions", nargs="+", choices=["fp32", "bf16"],
                        help="Trainer anchor: precisions to compare (default: fp32, and bf16 where the CPU has "
                             "AVX512_BF16 or AMX)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", choices=PARTS, action="append", default=[],
                        help="leave a part out (its metrics are kept from the previous results file)")
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    import torch

    from tinybert_edge.config import AugmentConfig, PipelineConfig
    from tinybert_edge.data import load_splits, sample

    torch.set_num_threads(args.threads)
    pipeline_config = PipelineConfig()
    metrics: dict[str, Metric] = {}
    extra: dict[str, Any] = {"student": args.student, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="tinybert-edge-distill-suite-") as tmp:
        work = Path(tmp)
        if "trainer" not in args.skip:
            trainer_metrics, extra["trainer"] = _trainer_anchor(args, work / "trainer")
            metrics.update(trainer_metrics)
        if {"distill", "augment"} - set(args.skip):
            train, dev, _ = load_splits(pipeline_config.data)
            if args.teacher:
                teacher = Path(args.teacher)
            else:
                from tinybert_edge.training.finetune import finetune
                from tinybert_edge.io import resolve_path

                teacher = finetune(resolve_path(pipeline_config.teacher), train, dev, pipeline_config.finetune,
                                   pipeline_config.cache_dir, progress=False)
            distill_train = sample(train, args.examples, seed=0)
            extra.update(teacher=str(teacher), data=pipeline_config.data.path)
        if "distill" not in args.skip:
            log.info("distill suite: our engine on %d examples", len(distill_train))
            ours = engine_task_distill(teacher, distill_train, sample(dev, args.dev_examples, seed=0), args.student,
                                       args.batch_size, args.learning_rate, work / "engine")
            log.info("distill suite: reference loop on %d examples", len(distill_train))
            reference = reference_task_distill(teacher, distill_train, args.student, args.batch_size,
                                               args.learning_rate, teacher_autograd=not args.reference_teacher_no_grad)
            samples = 2 * len(distill_train)  # one epoch of each stage
            # Training throughput: the two stages' loops (ours with the one teacher pass that caches its logits),
            # without one-time setup; end to end (loading, our dev evaluation and saving included) is reported too.
            ours_loops = sum(stage["seconds"] + stage.get("teacher_logits_seconds", 0.0)
                             for stage in ours["stages"].values())
            reference_loops = reference["intermediate"]["seconds"] + reference["prediction"]["seconds"]
            metrics.update(_pair("task distillation training throughput (stage 1 + stage 2 loops)",
                                 samples / ours_loops, samples / reference_loops, "samples/s"))
            metrics["task distillation end to end (loading, evaluation, saving included), ours vs reference"] = Metric(
                (samples / ours["total_s"]) / (samples / reference["total_s"]), "x")
            extra["distill"] = {
                "examples": len(distill_train), "batch_size": args.batch_size, "max_seq_length_reference": 128,
                "reference_teacher": "no_grad" if args.reference_teacher_no_grad else "autograd",
                "ours": ours, "reference": reference,
                "timing": "end to end from the model folders; ours also evaluates the dev sample and saves the student",
            }
        if "augment" not in args.skip:
            texts = sample(train, args.aug_sentences, seed=1)
            subset = texts.texts[: args.reference_aug_sentences]
            config = AugmentConfig()
            extra["augment"] = {"sentences": len(texts), "reference_sentences": len(subset),
                                "config": {"n_augmented": config.n_augmented, "p_t": config.p_t, "top_k": config.top_k}}
            mlm_folder = timing_mlm_folder(teacher, work / "timing-mlm")
            for run, (label, folder) in enumerate((("embedding neighbours (teacher, no MLM head)", teacher),
                                                   ("masked LM + embedding neighbours (timing model)", mlm_folder))):
                log.info("distill suite: augmentation with %s", label)
                mine = ours_augment(folder, texts, config, work / f"augment-cache-{run}")
                theirs = reference_augment(folder, subset, config.n_augmented, config.p_t, config.top_k)
                metrics.update(_pair(f"augmentation throughput, {label}", mine["sentences"] / mine["seconds"],
                                     theirs["sentences"] / theirs["seconds"], "sentences/s"))
                extra["augment"][label] = {"ours": mine, "reference": theirs}
    _carry_over(Path(args.results_dir) / "distill.json", set(args.skip), metrics, extra)
    return SuiteOutcome(metrics, extra)


def _part_of(metric_name: str) -> str:
    if metric_name.startswith(TRAINER_PREFIX):
        return "trainer"
    return "augment" if metric_name.startswith("augmentation") else "distill"


def _carry_over(previous: Path, skipped: set[str], metrics: dict[str, Metric], extra: dict[str, Any]) -> None:
    """Keep the metrics (and extra section) of the parts left out from the previous results file, each marked with
    the run that measured it: the file then holds every part, and says which numbers this run did not measure."""
    import json

    if not skipped or not previous.is_file():
        return
    document = json.loads(previous.read_text(encoding="utf-8"))
    old_extra = document.get("extra", {})
    for part in sorted(skipped):
        kept = {name: entry for name, entry in document.get("metrics", {}).items() if _part_of(name) == part}
        if not kept:
            continue
        source = old_extra.get("carried_over", {}).get(part) or {
            key: document.get(key) for key in ("timestamp", "command", "git", "environment")}
        for name, entry in kept.items():
            metrics[name] = Metric(entry["value"], entry["unit"], direction=entry.get("direction", "higher_is_better"),
                                   baseline=entry.get("baseline"), target=entry.get("target"))
        if part in old_extra:
            extra[part] = old_extra[part]
        extra.setdefault("carried_over", {})[part] = source


def _loop_seconds(stage: dict[str, Any]) -> float:
    """A stage's training time: its loop without dev evaluation, plus the one teacher pass that caches logits."""
    return stage["seconds"] - stage.get("evaluation_seconds", 0.0) + stage.get("teacher_logits_seconds", 0.0)


def _model_seconds(record: dict[str, Any]) -> float:
    """A training loop's seconds in forward and backward passes (its recorded phase_seconds, a CPU's)."""
    phases = record["phase_seconds"]
    return phases["forward"] + phases["backward"]


def _trainer_anchor(args: argparse.Namespace, work: Path) -> tuple[dict[str, Metric], dict[str, Any]]:
    """Our fine-tuning and task distillation against the transformers Trainer (group_by_length), per precision."""
    import json

    import torch

    from tinybert_edge.benchmarks.trainer_anchor import trainer_finetune, trainer_task_distill
    from tinybert_edge.config import DataConfig, DistillConfig, FinetuneConfig, PipelineConfig
    from tinybert_edge.data import load_splits, sample
    from tinybert_edge.distillation.task_distillation import distill
    from tinybert_edge.io import resolve_path
    from tinybert_edge.training.finetune import finetune
    from tinybert_edge.training.precision import cpu_bf16_support, resolve_precision

    folder = Path(args.trainer_data)
    train, dev, _ = load_splits(DataConfig(path=str(folder / "train.tsv"), dev_path=str(folder / "dev.tsv")))
    train, dev = sample(train, args.trainer_examples, seed=0), sample(dev, args.trainer_dev_examples, seed=0)
    encoder = resolve_path(args.encoder or PipelineConfig().teacher)
    native, reason = cpu_bf16_support()
    precisions = args.trainer_precisions or (["fp32", "bf16"] if native else ["fp32"])
    for precision in precisions:  # refuse a precision the CPU cannot run before any training
        resolve_precision(precision, torch.device("cpu"))
    base = FinetuneConfig(epochs=1.0, batch_size=args.batch_size, max_length=args.trainer_max_length, seed=0)
    settings = {"encoder": str(encoder), "data": str(folder), "train_examples": len(train), "dev_examples": len(dev),
                "max_length": args.trainer_max_length, "batch_size": args.batch_size, "epochs": 1,
                "finetune_learning_rate": base.learning_rate, "distill_learning_rate": args.learning_rate,
                "student": args.student, "threads": args.threads, "precisions": precisions, "bf16_native": native,
                "bf16_reason": reason, "trainer_sampler": "group_by_length"}
    extra: dict[str, Any] = {"settings": settings}
    metrics: dict[str, Metric] = {}

    def compare(name: str, ours_sps: float, theirs_sps: float, ours_acc: float, theirs_acc: float,
                passes: tuple[float, float, float]) -> None:
        """`passes`: our loop's seconds in the model's forward and backward passes (the teacher's included), the
        training seconds they are part of, and the Trainer's training seconds."""
        metrics[f"{TRAINER_PREFIX}, {name}, ours"] = Metric(ours_sps, "samples/s", baseline=theirs_sps)
        metrics[f"{TRAINER_PREFIX}, {name}, speedup over the Trainer (group_by_length)"] = Metric(
            ours_sps / theirs_sps, "x", target=TARGET_OVER_TRAINER)
        metrics[f"{TRAINER_PREFIX}, {name}, dev accuracy, ours"] = Metric(ours_acc, "accuracy", baseline=theirs_acc)
        # Why the speedup stops where it does: both loops call the same PyTorch kernels on the same length-grouped
        # batches, so the Trainer's time over our forward and backward time alone bounds what any loop could gain.
        model_seconds, ours_seconds, theirs_seconds = passes
        metrics[f"{TRAINER_PREFIX}, {name}, our loop's share in the model's forward and backward passes"] = Metric(
            model_seconds / ours_seconds, "fraction")
        metrics[f"{TRAINER_PREFIX}, {name}, largest speedup over the Trainer a loop could reach on these passes "
                "(Trainer seconds / our forward and backward seconds)"] = Metric(theirs_seconds / model_seconds, "x")

    teacher = None
    for precision in precisions:
        config = dataclasses.replace(base, precision=precision)
        log.info("distill suite: fine-tuning %s, ours, %s", encoder, precision)
        folder_ours = finetune(encoder, train, dev, config, cache_dir=work / f"cache-{precision}", progress=False)
        ours = json.loads((folder_ours / "finetune.json").read_text(encoding="utf-8"))
        teacher = teacher if teacher is not None and precision != "fp32" else folder_ours
        log.info("distill suite: fine-tuning %s, Trainer, %s", encoder, precision)
        theirs = trainer_finetune(encoder, train, dev, batch_size=config.batch_size,
                                  learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                                  warmup_ratio=config.warmup_ratio, epochs=config.epochs, max_length=config.max_length,
                                  precision=precision, seed=config.seed, work=work / f"trainer-finetune-{precision}")
        compare(f"fine-tuning {precision}", ours["examples_per_second"], theirs["samples_per_second"],
                ours["dev_accuracy"], theirs["dev_metrics"]["accuracy"],
                (_model_seconds(ours), ours["seconds"], theirs["seconds"]))
        extra[f"finetune {precision}"] = {
            "ours": {k: ours[k] for k in ("seconds", "examples_per_second", "steps", "precision", "dev_accuracy")},
            "trainer": theirs}
    if "fp32" in precisions:  # the old order (a plain shuffle, padded to each batch's longest) for the record
        plain = dataclasses.replace(base, precision="fp32", length_grouping=False)
        folder_plain = finetune(encoder, train, dev, plain, cache_dir=work / "cache-plain", progress=False)
        info = json.loads((folder_plain / "finetune.json").read_text(encoding="utf-8"))
        metrics[f"{TRAINER_PREFIX}, fine-tuning fp32 without length grouping, ours"] = Metric(
            info["examples_per_second"], "samples/s")
        extra["finetune fp32 without length grouping"] = {k: info[k] for k in ("seconds", "examples_per_second",
                                                                              "dev_accuracy")}
    for precision in precisions:
        config = DistillConfig(student=args.student, batch_size=args.batch_size, learning_rate=args.learning_rate,
                               max_length=args.trainer_max_length, intermediate_epochs=1.0, prediction_epochs=1.0,
                               eval_every=10**9, checkpoint_every=10**9, precision=precision)
        log.info("distill suite: task distillation of %s, ours, %s", teacher, precision)
        ours = distill(teacher, train, dev, work / f"student-{precision}", config,
                       work_dir=work / f"distill-work-{precision}", progress=False)
        log.info("distill suite: task distillation of %s, Trainer, %s", teacher, precision)
        theirs = trainer_task_distill(teacher, train, dev, config, work / f"trainer-distill-{precision}")
        samples = sum(stage["examples"] for stage in ours.stages.values())
        ours_seconds = sum(_loop_seconds(stage) for stage in ours.stages.values())
        theirs_seconds = theirs["intermediate"]["seconds"] + theirs["prediction"]["seconds"]
        # the teacher pass that caches stage 2's logits is forward work too
        model_seconds = sum(_model_seconds(stage) + stage.get("teacher_logits_seconds", 0.0)
                            for stage in ours.stages.values())
        compare(f"task distillation {precision} (stage 1 + stage 2)", samples / ours_seconds,
                samples / theirs_seconds, ours.dev_accuracy, theirs["dev_metrics"]["accuracy"],
                (model_seconds, ours_seconds, theirs_seconds))
        extra[f"distill {precision}"] = {"ours": ours.stages, "ours_dev_metrics": ours.dev_metrics, "trainer": theirs}
    return metrics, extra


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("distill", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
