"""Fine-tuning a bare encoder (such as all-MiniLM-L6-v2) into the task teacher, cached by what determines it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tinybert_edge.config import FinetuneConfig
from tinybert_edge.data import sample
from tinybert_edge.errors import RunDirExistsError, TinyBertEdgeError
from tinybert_edge.io import atomic_path, check_output_location, folder_size_bytes, sha256_tree, write_json_atomic

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("TINYBERT_EDGE_CACHE", Path.home() / ".cache" / "tinybert-edge"))


def data_digest(data: Any) -> str:
    """sha256 of the examples: texts, second texts and labels as the data writes them (class names, scores); a data
    class of another task (token tags, questions and answers) brings its own `digest()`."""
    if hasattr(data, "digest"):
        return data.digest()
    digest = hashlib.sha256()
    for i, text in enumerate(data.texts):
        digest.update(text.encode("utf-8", "surrogatepass"))
        if data.text_pairs is not None:
            digest.update(b"\x1f" + data.text_pairs[i].encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e" + str(data.label_of(i)).encode())
    return digest.hexdigest()


def finetune(
    encoder: str | Path,
    train: Any,
    dev: Any,
    config: FinetuneConfig = FinetuneConfig(),
    cache_dir: str | Path | None = None,
    progress: bool = True,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Fine-tune `encoder` on `train` for the data's task and return the folder of the resulting model.

    The folder lives in the cache under a key made of the encoder's weights, the training data and the settings,
    so a second call with the same inputs returns at once. With `out_dir`, the teacher is also copied there (a
    folder the user owns and can pass around; an existing one is replaced only with `overwrite`) and that folder
    is returned.
    """
    import torch

    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import check_model_folder, load_model, load_tokenizer, save_model
    from tinybert_edge.runtime.sessions import TorchSession
    from tinybert_edge.tasks import get_task
    from tinybert_edge.training.loop import LoopSpec, pick_device, run_loop

    task = get_task(train.task)

    if out_dir is not None:
        _check_out_dir(Path(out_dir), overwrite)
    folder = check_model_folder(encoder, role="teacher")
    task.check_training_data(train, "training")  # before any slow work: one class would teach nothing
    from tinybert_edge.training.precision import resolve_precision

    resolve_precision(config.precision, pick_device())  # a precision this machine cannot run fails before loading
    train = sample(train, config.max_train_examples, config.seed)
    key = hashlib.sha256(
        json.dumps(
            {"encoder": sha256_tree(folder, ("*.json", "*.safetensors", "*.txt")), "train": data_digest(train),
             "config": asdict(config)},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    target = Path(cache_dir or default_cache_dir()) / "teachers" / key
    if (target / "finetune.json").is_file():
        log.info("teacher: fine-tuned copy found in cache at %s (skipping fine-tuning)", target)
        return _copy_out(target, out_dir)

    tokenizer = load_tokenizer(folder)
    # The new head is drawn from torch's global generator, which starts from a random seed in every process: seed
    # it, so that the same encoder, data and settings (the cache key) always give the same teacher.
    torch.manual_seed(config.seed)
    model = load_model(folder, task, label_names=getattr(train, "label_names", None), role="teacher")
    device = pick_device()
    model.to(device)
    encoded_train = task.encode(tokenizer, train, config.max_length)
    encoded_dev = task.encode(tokenizer, task.align(dev, model.config), config.max_length)

    def loss_fn(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"total": task.fine_tune_loss(model, batch)}

    spec = LoopSpec(name="finetune", epochs=config.epochs, batch_size=config.batch_size,
                    learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                    warmup_ratio=config.warmup_ratio, seed=config.seed, max_length=config.max_length,
                    length_grouping=config.length_grouping, precision=config.precision)
    log.info("teacher: fine-tuning %s on %d examples (%s)", folder, len(train), device)
    result = run_loop(spec, model, loss_fn, encoded_train, device=device, progress=progress)
    model.to("cpu")
    scored = evaluate_session(TorchSession(folder, model=model, task=task), encoded_dev)
    task.record_settings(model.config, train)
    save_model(model, tokenizer, target)
    write_json_atomic(target / "finetune.json", {
        "encoder": str(folder), "encoder_source": str(encoder), "data": train.source, "task": task.name,
        "label_names": list(getattr(train, "label_names", None) or []), "train_examples": len(train),
        "config": asdict(config), "dev_metrics": scored.metrics, "dev_accuracy": scored.metrics.get("accuracy"),
        "seconds": result.seconds, "examples_per_second": result.examples_per_second, "steps": result.steps,
        "precision": result.precision, "phase_seconds": result.phase_seconds,
    })
    log.info("teacher: dev %s %.4f, saved to %s", task.primary_metric, scored.score, target)
    return _copy_out(target, out_dir)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise RunDirExistsError(f"teacher folder '{out}' already exists; pass --overwrite to replace it, or choose "
                                "another --out folder")
    check_output_location(out, "teacher folder")


def _copy_out(cached: Path, out_dir: str | Path | None) -> Path:
    """The cached teacher, copied (atomically) to `out_dir` when one is asked for."""
    if out_dir is None:
        return cached
    with atomic_path(out_dir) as tmp:
        shutil.copytree(cached, tmp)
    log.info("teacher: copied to %s", out_dir)
    return Path(out_dir)


# --- the teacher cache ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedTeacher:
    """One fine-tuned teacher in the cache, described by what it was made from rather than by its key."""

    key: str
    path: Path
    size_bytes: int
    encoder: str
    data: str
    train_examples: int | None
    dev_accuracy: float | None

    @classmethod
    def read(cls, folder: Path) -> "CachedTeacher":
        try:
            info: dict[str, Any] = json.loads((folder / "finetune.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}  # an unfinished or foreign folder: listed (so it can be cleared), described as unknown
        return cls(key=folder.name, path=folder, size_bytes=folder_size_bytes(folder),
                   encoder=str(info.get("encoder_source") or info.get("encoder") or "?"),
                   data=str(info.get("data") or "?"), train_examples=info.get("train_examples"),
                   dev_accuracy=info.get("dev_accuracy"))


def cached_teachers(cache_dir: str | Path | None = None) -> list[CachedTeacher]:
    """The fine-tuned teachers in the cache (`cache_dir`, default ~/.cache/tinybert-edge), oldest first."""
    root = Path(cache_dir or default_cache_dir()) / "teachers"
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [CachedTeacher.read(p) for p in sorted(folders, key=lambda p: p.stat().st_mtime)]


def clear_cached_teachers(cache_dir: str | Path | None = None, keys: list[str] | tuple[str, ...] = ()) -> list[CachedTeacher]:
    """Delete the cached teachers named by `keys` (a key or a unique prefix of one), or all of them when `keys` is
    empty; return what was deleted. An unknown key is an error that lists the keys there are."""
    teachers = cached_teachers(cache_dir)
    chosen = teachers
    if keys:
        chosen = []
        for key in keys:
            matches = [t for t in teachers if t.key.startswith(key)]
            if len(matches) != 1:
                known = ", ".join(t.key for t in teachers) or "none"
                problem = "matches no cached teacher" if not matches else "matches more than one cached teacher"
                raise TinyBertEdgeError(f"cache key '{key}' {problem}; the cached teachers are: {known} "
                                        "(tinybert-edge cache list)")
            chosen.append(matches[0])
    for teacher in chosen:
        shutil.rmtree(teacher.path)
        log.info("cache: removed %s (%s fine-tuned on %s)", teacher.path, teacher.encoder, teacher.data)
    return chosen
