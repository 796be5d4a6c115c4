"""The training loop shared by teacher fine-tuning and both distillation stages.

Dynamic padding, gradient accumulation, linear warm-up then decay, mixed precision on CUDA, every loss term
logged to JSONL, non-finite losses stopped with the step and the term, and checkpoints written atomically with
optimizer, scheduler and RNG state so that a resumed run follows the same path as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tinybert_edge.data import EncodedData
from tinybert_edge.errors import DistillationError
from tinybert_edge.io import atomic_path

log = logging.getLogger(__name__)

LossFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass
class LoopSpec:
    name: str
    epochs: float
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    accumulation: int = 1
    seed: int = 0
    log_every: int = 20
    eval_every: int = 0
    checkpoint_every: int = 0
    max_length: int = 128


@dataclass
class LoopResult:
    steps: int
    seconds: float
    examples: int
    best_score: float | None = None
    best_step: int | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batch_to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(value).to(device) for name, value in batch.items()}


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def _micro_batches(data: EncodedData, spec: LoopSpec):
    """Yield (epoch, batch) forever in a seeded order: the same seed always gives the same sequence of batches."""
    epoch = 0
    while True:
        order = _epoch_order(len(data), spec.seed, epoch)
        for batch in data.batches(spec.batch_size, order=order):
            yield epoch, batch
        epoch += 1


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def run_loop(
    spec: LoopSpec,
    module: torch.nn.Module,
    loss_fn: LossFn,
    data: EncodedData,
    *,
    device: torch.device,
    work_dir: Path | None = None,
    evaluate: Callable[[], float] | None = None,
    resume: bool = False,
    digest: str = "",
    progress: bool = True,
) -> LoopResult:
    """Train `module`'s parameters on `data` with `loss_fn`; return the loop's summary.

    With `evaluate`, the best-scoring weights seen at evaluation points are loaded back into `module` at the end.
    With `work_dir`, checkpoints go to `work_dir/<name>.ckpt` and loss terms to `work_dir/<name>.jsonl`.
    """
    from tqdm.auto import tqdm

    micro_per_epoch = math.ceil(len(data) / spec.batch_size)
    total_micro = max(1, round(spec.epochs * micro_per_epoch))
    total_steps = math.ceil(total_micro / spec.accumulation)
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.learning_rate,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total_steps, int(spec.warmup_ratio * total_steps)))
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    checkpoint = work_dir / f"{spec.name}.ckpt" if work_dir else None
    log_path = work_dir / f"{spec.name}.jsonl" if work_dir else None
    start_step, best_score, best_step, best_state = 0, None, None, None
    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, digest)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])  # dropout on a GPU draws from the CUDA generators
        if state.get("scaler"):  # mixed precision (CUDA) only; the loss scale continues where it stopped
            scaler.load_state_dict(state["scaler"])
        random.setstate(_tuple_state(state["python_rng"]))
        start_step = int(state["step"])
        best_score, best_step = state.get("best_score"), state.get("best_step")
        best_state = state.get("best_module")
        log.info("%s: resumed from %s at step %d of %d", spec.name, checkpoint, start_step, total_steps)

    module.train()
    batches = _micro_batches(data, spec)
    for _ in range(start_step * spec.accumulation):  # fast-forward the data order to where the checkpoint stopped
        next(batches)
    history: list[dict] = []
    examples = 0
    started = time.perf_counter()
    bar = tqdm(total=total_steps, initial=start_step, desc=spec.name, unit="step", disable=not progress, dynamic_ncols=True)
    if log_path:
        _truncate_log(log_path, start_step)
    log_handle = open(log_path, "a", encoding="utf-8") if log_path else None
    try:
        for step in range(start_step, total_steps):
            sums: dict[str, float] = {}
            for _ in range(spec.accumulation):
                epoch, batch = next(batches)
                tensors = batch_to_tensors(batch, device)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    terms = loss_fn(tensors)
                _check_finite(terms, step + 1, spec.name, checkpoint)
                scaler.scale(terms["total"] / spec.accumulation).backward()
                examples += len(batch["labels"])
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) / spec.accumulation
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            done = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{sums['total']:.4f}")
            if done % spec.log_every == 0 or done == total_steps:
                record = {"stage": spec.name, "step": done, "epoch": epoch, "lr": scheduler.get_last_lr()[0], **sums}
                history.append(record)
                if log_handle:
                    log_handle.write(json.dumps(record) + "\n")
                    log_handle.flush()
            if evaluate and (spec.eval_every and done % spec.eval_every == 0 or done == total_steps):
                score = evaluate()
                module.train()
                history.append({"stage": spec.name, "step": done, "dev_score": score})
                if log_handle:
                    log_handle.write(json.dumps(history[-1]) + "\n")
                log.info("%s: step %d dev score %.4f", spec.name, done, score)
                if best_score is None or score > best_score:
                    best_score, best_step = score, done
                    best_state = copy.deepcopy(module.state_dict())
            if checkpoint and spec.checkpoint_every and done % spec.checkpoint_every == 0 and done < total_steps:
                save_checkpoint(checkpoint, module, optimizer, scheduler, done, digest, best_score, best_step, best_state,
                                scaler)
    finally:
        bar.close()
        if log_handle:
            log_handle.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return LoopResult(
        steps=total_steps, seconds=time.perf_counter() - started, examples=examples,
        best_score=best_score, best_step=best_step, history=history,
    )


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines past `last_step` (written after the checkpoint a resumed run starts from), atomically."""
    if not path.exists():
        return
    from tinybert_edge.io import write_text_atomic

    kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    write_text_atomic(path, "".join(kept))


def _tuple_state(value):
    return tuple(_tuple_state(v) for v in value) if isinstance(value, (list, tuple)) else value


def _check_finite(terms: dict[str, torch.Tensor], step: int, stage: str, checkpoint: Path | None) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            where = f"; the last good checkpoint is {checkpoint}" if checkpoint and checkpoint.exists() else ""
            raise DistillationError(
                f"{stage}: the '{name}' loss became {float(value)} at step {step}{where}; "
                "lower the learning rate or the term's weight"
            )


def save_checkpoint(path: Path, module, optimizer, scheduler, step: int, digest: str,
                    best_score=None, best_step=None, best_state=None, scaler=None) -> None:
    state = {
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "scaler": scaler.state_dict() if scaler is not None else {},
        "step": step,
        "digest": digest,
        "best_score": best_score,
        "best_step": best_step,
        "best_module": best_state,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, digest: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several untyped errors for unreadable files
        raise DistillationError(f"checkpoint '{path}' is unreadable ({exc}); delete it to start this stage over") from exc
    if state.get("digest") != digest:
        raise DistillationError(
            f"checkpoint '{path}' was written by a run with a different configuration; "
            "resume with the same settings, or start a new run"
        )
    return state
