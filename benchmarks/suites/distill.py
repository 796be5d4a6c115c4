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
Writes benchmarks/results/distill.json; the targets are 3x on both.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", choices=["distill", "augment"], action="append", default=[])
    return parser


def _measure(args: argparse.Namespace, command: str) -> SuiteOutcome:
    import torch

    from tinybert_edge.config import AugmentConfig, PipelineConfig
    from tinybert_edge.data import load_splits, sample

    torch.set_num_threads(args.threads)
    pipeline_config = PipelineConfig()
    train, dev, _ = load_splits(pipeline_config.data)
    if args.teacher:
        teacher = Path(args.teacher)
    else:
        from tinybert_edge.training.finetune import finetune
        from tinybert_edge.io import resolve_path

        teacher = finetune(resolve_path(pipeline_config.teacher), train, dev, pipeline_config.finetune,
                           pipeline_config.cache_dir, progress=False)
    distill_train = sample(train, args.examples, seed=0)
    metrics: dict[str, Metric] = {}
    extra: dict[str, Any] = {"teacher": str(teacher), "student": args.student, "threads": args.threads,
                             "data": pipeline_config.data.path}
    with tempfile.TemporaryDirectory(prefix="tinybert-edge-distill-suite-") as tmp:
        work = Path(tmp)
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
    return SuiteOutcome(metrics, extra)


def main(argv: Sequence[str] | None = None) -> int:
    return suite_main("distill", build_parser(), _measure, argv)


if __name__ == "__main__":
    sys.exit(main())
