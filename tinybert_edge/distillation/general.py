"""General distillation: a pre-trained (not fine-tuned) teacher teaches a bare student encoder its embeddings,
attention and hidden states on a plain-text corpus (TinyBERT section 3.3), streamed line by line from disk.

The result is a student folder that task distillation takes as its starting point (`DistillConfig(student=<folder>)`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tinybert_edge.config import GeneralDistillConfig
from tinybert_edge.errors import DataError
from tinybert_edge.io import resolve_path, sha256_file, write_json_atomic

log = logging.getLogger(__name__)


class TextStream:
    """A plain-text corpus read lazily: one example per non-empty line, shuffled through a bounded buffer.

    Memory holds at most `shuffle_buffer` lines, whatever the corpus size. Lines are decoded as UTF-8 with
    undecodable bytes replaced, and tokenized per batch, truncated to `max_length` tokens.
    """

    def __init__(self, path: str | Path, tokenizer: Any, max_length: int, shuffle_buffer: int = 10_000) -> None:
        self.path = resolve_path(path)
        if not self.path.is_file():
            raise DataError(f"corpus '{self.path}' is not a file; give a plain-text file with one sentence per line")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.shuffle_buffer = shuffle_buffer
        self._length: int | None = None

    def _lines(self) -> Iterator[str]:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                text = line.strip()
                if text:
                    yield text

    def __len__(self) -> int:
        if self._length is None:
            self._length = sum(1 for _ in self._lines())
            if self._length == 0:
                raise DataError(f"corpus '{self.path}' has no non-empty lines; put one sentence or document per line")
        return self._length

    def _shuffled(self, rng: random.Random) -> Iterator[str]:
        buffer: list[str] = []
        for text in self._lines():
            if len(buffer) < self.shuffle_buffer:
                buffer.append(text)
                continue
            slot = rng.randrange(len(buffer))
            yield buffer[slot]
            buffer[slot] = text
        rng.shuffle(buffer)
        yield from buffer

    def _collate(self, texts: list[str]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="longest",
                                 return_token_type_ids=True, return_attention_mask=True, return_tensors="np")
        batch = {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
        batch["labels"] = np.zeros(len(texts), dtype=np.int64)  # no labels in general distillation; rows are counted
        batch["index"] = np.full(len(texts), -1, dtype=np.int64)
        return batch

    def global_batches(self, batch_size: int, seed: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(epoch, batch) forever; the same seed gives the same sequence, so a resumed run can fast-forward."""
        epoch = 0
        while True:
            rng = random.Random(seed * 1_000_003 + epoch)
            texts: list[str] = []
            for text in self._shuffled(rng):
                texts.append(text)
                if len(texts) == batch_size:
                    yield epoch, self._collate(texts)
                    texts = []
            if texts:
                yield epoch, self._collate(texts)
            epoch += 1


@dataclass
class GeneralDistillResult:
    student_dir: Path
    steps: int
    seconds: float
    examples_per_second: float
    layer_map: list[int] = field(default_factory=list)
    final_loss: dict[str, float] = field(default_factory=dict)


def general_distill(
    teacher: str | Path,
    corpus: str | Path,
    out_dir: str | Path,
    config: GeneralDistillConfig = GeneralDistillConfig(),
    work_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> GeneralDistillResult:
    """Distil the pre-trained encoder in `teacher` into a bare student encoder saved at `out_dir`.

    `corpus` is a plain-text file, one sentence or document per line, streamed. `work_dir` holds the checkpoint and
    the loss log; with `resume` the run continues from its last checkpoint (same settings, teacher and corpus).
    """
    import torch
    from transformers import BertModel

    from tinybert_edge.distillation.distiller import IntermediateObjective
    from tinybert_edge.distillation.layer_map import layer_map
    from tinybert_edge.distillation.student import build_student, is_teacher_init
    from tinybert_edge.distillation.teacher_init import IMPORTANCE_EXAMPLES, StudentShape, describe, encode_texts
    from tinybert_edge.training.loop import LoopSpec, init_distributed, pick_device, run_loop
    from tinybert_edge.io import sha256_tree
    from tinybert_edge.models import check_model_folder, count_parameters, load_tokenizer, save_model

    context = init_distributed()
    folder = check_model_folder(teacher, role="teacher")
    architectures = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    if any("ForSequenceClassification" in name for name in architectures):
        log.warning("general distillation: %s is a fine-tuned classifier; the method expects a pre-trained encoder "
                    "(its task head is ignored)", folder)
    teacher_model = BertModel.from_pretrained(folder, add_pooling_layer=False,
                                              use_safetensors=(folder / "model.safetensors").is_file())
    tokenizer = load_tokenizer(folder)
    stream = TextStream(corpus, tokenizer, config.max_length, config.shuffle_buffer)
    lines = len(stream)  # one streaming pass; an empty corpus fails here, before any model is built
    torch.manual_seed(config.seed)
    importance = None
    if is_teacher_init(config.student):  # the corpus's first lines rank the teacher's units
        texts = list(itertools.islice(stream._lines(), IMPORTANCE_EXAMPLES))
        importance = encode_texts(tokenizer, texts, config.max_length)
    student = build_student(config.student, teacher_model, head=False, importance_data=importance, tokenizer=tokenizer)
    start = dict(student.config.student_init)
    mapping = layer_map(student.config.num_hidden_layers, teacher_model.config.num_hidden_layers, config.layer_map)
    log.info("general distillation: %s -> student %s (%d layers, width %d, %.1fM parameters), layer map %s, "
             "corpus %s (%d lines, streamed)", folder, config.student, student.config.num_hidden_layers,
             student.config.hidden_size, count_parameters(student) / 1e6, mapping, stream.path, lines)

    device = pick_device()
    intermediate = IntermediateObjective(student, teacher_model, mapping, config, device)

    work = Path(work_dir) if work_dir else None
    if work:
        work.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps({
        "config": asdict(config), "corpus": sha256_file(stream.path),
        "teacher": sha256_tree(folder, ("*.json", "*.safetensors")),
    }, sort_keys=True).encode()).hexdigest()
    spec = LoopSpec(name="general", epochs=config.epochs, max_steps=config.max_steps, batch_size=config.batch_size,
                    learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                    warmup_ratio=config.warmup_ratio, accumulation=config.gradient_accumulation, seed=config.seed,
                    log_every=config.log_every, checkpoint_every=config.checkpoint_every, max_length=config.max_length,
                    precision=config.precision)
    result = run_loop(spec, intermediate.distiller, intermediate, stream, device=device, work_dir=work, resume=resume,
                      digest=digest, progress=progress)
    intermediate.remove()
    student.to("cpu").eval()
    last = next((h for h in reversed(result.history) if "total" in h), {})
    final_loss = {k: v for k, v in last.items() if k not in ("stage", "step", "epoch", "lr")}
    summary = GeneralDistillResult(student_dir=Path(out_dir), steps=result.steps, seconds=round(result.seconds, 2),
                                   examples_per_second=round(result.examples_per_second, 2), layer_map=mapping,
                                   final_loss=final_loss)
    student.config.student_init = describe("general-distilled", start.get("shape") or StudentShape.from_config(
        student.config).name, start=start, steps=result.steps, corpus_lines=lines)
    if context.is_main:
        save_model(student, tokenizer, out_dir)
        write_json_atomic(Path(out_dir) / "general_distill.json", {
            "student_init": student.config.student_init,
            "teacher": str(folder), "corpus": str(stream.path), "corpus_lines": lines, "config": asdict(config),
            "layer_map": mapping, "steps": result.steps, "examples": result.examples, "seconds": summary.seconds,
            "examples_per_second": summary.examples_per_second, "final_loss": final_loss,
            "parameters": count_parameters(student), "processes": context.world,
        })
        log.info("general distillation: student saved to %s (loss log: %s)", out_dir,
                 work / "general.jsonl" if work else "not kept")
    if context.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return summary
