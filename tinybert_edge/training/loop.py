"""The training loop shared by teacher fine-tuning and both distillation stages.

Dynamic padding (each batch padded to its longest member), length-grouped batches (`length_grouping`, see
tinybert_edge.training.batching), gradient accumulation, linear warm-up then decay, bf16 autocast on CPUs that run
it natively and bf16/fp16 on CUDA (`precision`, see tinybert_edge.training.precision), a fused AdamW, every loss term
logged to JSONL, non-finite losses stopped with the step and the term, and checkpoints written atomically with
optimizer, scheduler and RNG state so that a resumed run follows the same path as an uninterrupted one.

The loop reads nothing back from the device between log points: loss terms stay tensors until a log, evaluation,
checkpoint or the end, where their finiteness is checked step by step (naming the first bad step and term) before
anything is written.

Data parallel: under torchrun (WORLD_SIZE > 1) every process draws the same global batch, padded once to its
longest member, and trains on its own slice of rows; gradients are averaged with one all-reduce per optimizer step,
each slice's loss weighted by its share of the global batch, so the update equals a single process's on the whole
batch (torch's DistributedDataParallel does the averaging). Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tinybert_edge.data import EncodedData
from tinybert_edge.training.batching import length_grouped_batches, shuffled_order
from tinybert_edge.training.precision import resolve_precision
from tinybert_edge.errors import DistillationError
from tinybert_edge.io import atomic_path

log = logging.getLogger(__name__)

LossFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]

# Off a terminal (a log file, CI, nohup) a progress bar is invisible or garbled, so the loop logs a plain line at
# least this often instead.
PROGRESS_LOG_SECONDS = 30.0


class ProgressLog:
    """Plain progress lines (step, loss, time left) at most every `interval` seconds, for runs without a visible
    progress bar; `clock` is injectable so that tests need no sleeping."""

    def __init__(self, name: str, start_step: int, total_steps: int, enabled: bool, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.start_step, self.total_steps, self.enabled = name, start_step, total_steps, enabled
        self.interval = PROGRESS_LOG_SECONDS if interval is None else interval
        self.clock = clock
        self.started = self.last = clock()

    def update(self, step: int, loss: float | None = None) -> None:
        now = self.clock()
        if not self.enabled or now - self.last < self.interval:
            return
        self.last = now
        rate = (step - self.start_step) / max(now - self.started, 1e-9)
        left = (self.total_steps - step) / rate if rate > 0 else float("inf")
        eta = f"{int(left // 60)}m{int(left % 60):02d}s" if math.isfinite(left) else "unknown"
        if loss is None:
            log.info("%s: %d/%d, ETA %s", self.name, step, self.total_steps, eta)
        else:
            log.info("%s: step %d/%d, loss %.4f, ETA %s", self.name, step, self.total_steps, loss, eta)


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
    max_steps: int | None = None  # overrides epochs (a streamed corpus is often trained by steps)
    length_grouping: bool = False  # length-grouped batches (a streamed corpus brings its own order)
    precision: str = "fp32"  # fp32, bf16, fp16 or auto (tinybert_edge.training.precision)


@dataclass
class LoopResult:
    steps: int
    # The stage's whole cost, resumed runs included (from the checkpoint's totals; the steps an interruption lost
    # after the last checkpoint are not counted, since their work was redone).
    seconds: float
    examples: int
    best_score: float | None = None
    best_step: int | None = None
    history: list[dict] = field(default_factory=list)
    precision: str = "fp32"  # what the loop ran in (an `auto` request resolved)
    evaluation_seconds: float = 0.0  # of `seconds`, the time spent in dev evaluations
    # False when resumed from a checkpoint written before checkpoints carried totals: `seconds` and `examples` then
    # cover only the steps this run trained.
    whole_cost: bool = True
    # Where the stage's steps spent their time (seconds; a resumed stage's earlier steps included, from the
    # checkpoint): "data" (batching, to tensors), "forward" (the loss, teacher included), "backward", "optimizer"
    # (clipping, AdamW, schedule). Measured on a CPU, where every call returns when its work is done; None on a GPU,
    # where timing a phase would need a device sync per step, and after a checkpoint that did not record them.
    phase_seconds: dict[str, float] | None = None

    @property
    def examples_per_second(self) -> float:
        """Training throughput: examples over the loop's time without its dev evaluations."""
        training = self.seconds - self.evaluation_seconds
        return self.examples / training if training > 0 else 0.0


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_context() -> DistributedContext:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size())
    return DistributedContext()


def init_distributed() -> DistributedContext:
    """Join the process group that torchrun describes (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        context = distributed_context()
        log.info("data parallel: rank %d of %d (%s)", context.rank, context.world, dist.get_backend())
    return distributed_context()


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def batch_to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(value).to(device) for name, value in batch.items()}


def _global_batches(data, spec: LoopSpec):
    """Yield (epoch, batch) forever in a seeded order: the same seed always gives the same sequence of batches.

    Batches carry "index" (each row's position in `data`, for cached teacher outputs). A streamed corpus (an object
    with `global_batches(batch_size, seed)`, see tinybert_edge.distillation.general) supplies its own sequence.
    With `length_grouping`, batches are grouped by length at the size of one optimizer step (batch_size x
    accumulation) and split into micro-batches, so that accumulation still equals one larger batch.
    """
    if hasattr(data, "global_batches"):
        yield from data.global_batches(spec.batch_size, spec.seed)
        return
    lengths = [len(ids) for ids in data.input_ids] if spec.length_grouping else None
    epoch = 0
    while True:
        if lengths is None:
            order = shuffled_order(len(data), spec.seed, epoch)
            micro = [order[start : start + spec.batch_size] for start in range(0, len(order), spec.batch_size)]
        else:
            steps = length_grouped_batches(lengths, spec.batch_size * spec.accumulation, spec.seed, epoch)
            micro = [step[start : start + spec.batch_size] for step in steps
                     for start in range(0, len(step), spec.batch_size)]
        for chosen in micro:
            batch = data.collate(chosen)
            batch["index"] = np.asarray(chosen, dtype=np.int64)
            yield epoch, batch
        epoch += 1


def _shard(batch: dict[str, np.ndarray], context: DistributedContext) -> tuple[dict[str, np.ndarray], float]:
    """This rank's rows of a global batch, and the weight (share of the batch x world) that keeps gradients exact."""
    rows = len(batch["labels"])
    if context.world == 1:
        return batch, 1.0
    mine = np.array_split(np.arange(rows), context.world)[context.rank]
    return {name: value[mine] for name, value in batch.items()}, len(mine) * context.world / rows


class _Objective(torch.nn.Module):
    """`loss_fn` as the forward pass of a module that owns `module`'s parameters, so that DistributedDataParallel
    sees the loss computed through its own forward (it must, to reduce gradients)."""

    def __init__(self, module: torch.nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.loss_fn(batch)


def _data_parallel(module: torch.nn.Module, loss_fn: LossFn, context: DistributedContext, device: torch.device):
    """The callable that computes a batch's loss terms: `loss_fn` itself in one process; under torchrun, the loss
    through DistributedDataParallel (gloo on CPUs, NCCL on GPUs), which broadcasts rank 0's weights once and averages
    gradients over the processes on each synchronised backward pass. Parameters that a loss leaves unused (the
    classifier head during stage 1) are allowed."""
    if context.world == 1:
        return loss_fn
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(_Objective(module, loss_fn), device_ids=ids, find_unused_parameters=True)


def _mean_over_ranks(values: dict[str, float], context: DistributedContext) -> dict[str, float]:
    if context.world == 1:
        return values
    import torch.distributed as dist

    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {n: float(v) / context.world for n, v in zip(names, tensor)}


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

    context = distributed_context()
    if spec.batch_size < context.world:
        raise DistillationError(
            f"{spec.name}: batch_size {spec.batch_size} is smaller than the {context.world} processes; "
            "the batch size is global, so give at least one example per process"
        )
    if spec.max_steps:
        total_steps = spec.max_steps
    else:
        micro_per_epoch = math.ceil(len(data) / spec.batch_size)
        total_micro = max(1, round(spec.epochs * micro_per_epoch))
        total_steps = math.ceil(total_micro / spec.accumulation)
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.learning_rate, **_adamw_implementation(device),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total_steps, int(spec.warmup_ratio * total_steps)))
    precision = resolve_precision(spec.precision, device)
    log.info("%s: precision %s (%s), length grouping %s", spec.name, precision.name, precision.reason,
             "on" if spec.length_grouping else "off")
    scaler = torch.amp.GradScaler(device.type, enabled=precision.loss_scaling)

    checkpoint = work_dir / f"{spec.name}.ckpt" if work_dir else None
    log_path = work_dir / f"{spec.name}.jsonl" if work_dir else None
    start_step, best_score, best_step, best_state, whole_cost = 0, None, None, None, True
    # What the steps before the checkpoint cost (a resumed stage reports its whole time, examples and evaluations).
    before = {"seconds": 0.0, "examples": 0, "evaluation_seconds": 0.0}
    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    if context.world > 1:
        torch.manual_seed(spec.seed + context.rank)  # each process draws its own dropout masks
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, digest)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng = state["rank_rng"][context.rank] if len(state.get("rank_rng") or []) == context.world else state
        torch.set_rng_state(rng["torch_rng"])
        if rng.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda_rng"])  # dropout on a GPU draws from the CUDA generators
        if state.get("scaler"):  # mixed precision (CUDA) only; the loss scale continues where it stopped
            scaler.load_state_dict(state["scaler"])
        random.setstate(_tuple_state(rng["python_rng"]))
        start_step = int(state["step"])
        best_score, best_step = state.get("best_score"), state.get("best_step")
        best_state = state.get("best_module")
        before.update(state.get("totals") or {})
        whole_cost = "totals" in state
        if not whole_cost:
            log.warning("%s: checkpoint %s predates recorded stage costs: this stage's time and examples cover "
                        "only the steps trained from here", spec.name, checkpoint)
        log.info("%s: resumed from %s at step %d of %d", spec.name, checkpoint, start_step, total_steps)

    compute = _data_parallel(module, loss_fn, context, device)  # every process starts from rank 0's weights
    module.train()
    batches = _global_batches(data, spec)
    for _ in range(start_step * spec.accumulation):  # fast-forward the data order to where the checkpoint stopped
        next(batches)
    examples = 0
    evaluation_seconds = 0.0
    phases = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0) if device.type == "cpu" else None
    clock = time.perf_counter
    pending: list[tuple[int, dict[str, torch.Tensor]]] = []  # loss terms of the steps not yet checked for finiteness
    started = time.perf_counter()

    def totals() -> dict:  # the stage's cost so far, the steps before the checkpoint it resumed from included
        cost = {"seconds": before["seconds"] + time.perf_counter() - started,
                "examples": int(before["examples"]) + examples,
                "evaluation_seconds": before["evaluation_seconds"] + evaluation_seconds}
        # Phases only where every step so far was timed (none on a GPU; none before a checkpoint without them).
        if phases is not None and (start_step == 0 or "phase_seconds" in before):
            earlier = before.get("phase_seconds") or {}
            cost["phase_seconds"] = {name: earlier.get(name, 0.0) + value for name, value in phases.items()}
        return cost

    bar = tqdm(total=total_steps, initial=start_step, desc=spec.name, unit="step",
               disable=not progress or not context.is_main or not sys.stderr.isatty(), dynamic_ncols=True)
    heartbeat = ProgressLog(spec.name, start_step, total_steps,
                            enabled=context.is_main and bar.disable)  # the bar is off off a terminal too
    history: list[dict] = []
    if log_path and context.is_main:
        _truncate_log(log_path, start_step)
        if start_step and log_path.exists():  # the result covers the whole stage, the steps before the checkpoint too
            history = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    log_handle = open(log_path, "a", encoding="utf-8") if log_path and context.is_main else None
    try:
        for step in range(start_step, total_steps):
            sums: dict[str, torch.Tensor] = {}
            for micro in range(spec.accumulation):
                t0 = clock()
                epoch, global_batch = next(batches)
                batch, share = _shard(global_batch, context)
                tensors = batch_to_tensors(batch, device)
                # Gradients are reduced over the processes once per optimizer step, on its last micro-batch.
                last = micro == spec.accumulation - 1
                sync = compute.no_sync() if context.world > 1 and not last else contextlib.nullcontext()
                with sync:
                    t1 = clock()
                    with torch.autocast(device_type=device.type, dtype=precision.dtype or torch.float32,
                                        enabled=precision.autocast):
                        terms = compute(tensors)
                    t2 = clock()
                    scaler.scale(terms["total"] * share / spec.accumulation).backward()
                if phases is not None:
                    phases["data"] += t1 - t0
                    phases["forward"] += t2 - t1
                    phases["backward"] += clock() - t2
                examples += len(global_batch["labels"])
                for key, value in terms.items():
                    term = value.detach().float() * (share / spec.accumulation)
                    sums[key] = sums[key] + term if key in sums else term
            pending.append((step + 1, sums))
            t0 = clock()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if phases is not None:
                phases["optimizer"] += clock() - t0
            done = step + 1
            bar.update(1)
            heartbeat.update(done, sums["total"])
            if done % spec.log_every == 0 or done == total_steps:
                _check_finite(pending, spec.name, checkpoint, context)
                sums = _mean_over_ranks({key: float(value) for key, value in sums.items()}, context)
                bar.set_postfix(loss=f"{sums['total']:.4f}")
                record = {"stage": spec.name, "step": done, "epoch": epoch, "lr": scheduler.get_last_lr()[0], **sums}
                history.append(record)
                if log_handle:
                    log_handle.write(json.dumps(record) + "\n")
                    log_handle.flush()
            if evaluate and (spec.eval_every and done % spec.eval_every == 0 or done == total_steps):
                _check_finite(pending, spec.name, checkpoint, context)
                evaluation_started = time.perf_counter()
                score = evaluate()
                module.train()
                evaluation_seconds += time.perf_counter() - evaluation_started
                history.append({"stage": spec.name, "step": done, "dev_score": score})
                if log_handle:
                    log_handle.write(json.dumps(history[-1]) + "\n")
                log.info("%s: step %d dev score %.4f", spec.name, done, score)
                if best_score is None or score > best_score:
                    best_score, best_step = score, done
                    best_state = copy.deepcopy(module.state_dict())
            # The last step's checkpoint too: a finished stage is not trained again by a resume (one that changes
            # only stage 2's settings reuses stage 1, and a crash after training loses no training).
            if checkpoint and spec.checkpoint_every and (done % spec.checkpoint_every == 0 or done == total_steps):
                _check_finite(pending, spec.name, checkpoint, context)  # never a checkpoint of non-finite weights
                save_checkpoint(checkpoint, module, optimizer, scheduler, done, digest, best_score, best_step, best_state,
                                scaler, context, totals())
    finally:
        bar.close()
        if log_handle:
            log_handle.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    cost = totals()
    return LoopResult(
        steps=total_steps, seconds=cost["seconds"], examples=cost["examples"], best_score=best_score,
        best_step=best_step, history=history, precision=precision.name,
        evaluation_seconds=cost["evaluation_seconds"], whole_cost=whole_cost,
        phase_seconds={name: round(value, 3) for name, value in cost["phase_seconds"].items()}
        if "phase_seconds" in cost else None,
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


def _adamw_implementation(device: torch.device) -> dict[str, bool]:
    """AdamW's fused kernel (one kernel for every parameter's update) on CPUs and CUDA GPUs, where torch has one;
    elsewhere its multi-tensor (foreach) implementation."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}


def _check_finite(pending: list[tuple[int, dict[str, torch.Tensor]]], stage: str, checkpoint: Path | None,
                  context: DistributedContext = DistributedContext()) -> None:
    """Raise naming the first step and term of `pending` (step, loss terms) that is not finite; then forget them.
    One device read for all the pending steps."""
    if not pending:
        return
    names = sorted(pending[0][1])
    values = torch.stack([torch.stack([terms[n].reshape(()) for n in names]) for _, terms in pending]).cpu()
    bad = (~torch.isfinite(values)).to(torch.float32)
    if context.world > 1:  # one process's NaN stops all of them, instead of leaving the others in an all-reduce
        import torch.distributed as dist

        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    steps = [step for step, _ in pending]
    pending.clear()
    if bad.any():
        row, column = (int(i) for i in bad.nonzero()[0])
        where = f"; the last good checkpoint is {checkpoint}" if checkpoint and checkpoint.exists() else ""
        raise DistillationError(
            f"{stage}: the '{names[column]}' loss became {float(values[row, column])} at step {steps[row]}{where}; "
            "lower the learning rate or the term's weight"
        )


def _rng_state() -> dict:
    return {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def save_checkpoint(path: Path, module, optimizer, scheduler, step: int, digest: str,
                    best_score=None, best_step=None, best_state=None, scaler=None,
                    context: DistributedContext = DistributedContext(), totals: dict | None = None) -> None:
    """Everything a resumed run needs to continue as if never stopped; `totals` is what the steps so far cost
    (seconds, examples, evaluation seconds), so a resumed stage reports its whole cost, not its last part's."""
    rank_rng = None
    if context.world > 1:  # every process's generators, so that each resumes its own dropout stream
        import torch.distributed as dist

        rank_rng = [None] * context.world
        dist.all_gather_object(rank_rng, _rng_state())
    if not context.is_main:
        return
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
        "rank_rng": rank_rng,
        "totals": totals or {},
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
