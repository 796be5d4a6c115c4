"""Fine-tuning a bare encoder (such as all-MiniLM-L6-v2) into the task teacher, cached by what determines it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from tinybert_edge.config import FinetuneConfig
from tinybert_edge.data import TextClassificationData, sample
from tinybert_edge.io import sha256_tree, write_json_atomic

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("TINYBERT_EDGE_CACHE", Path.home() / ".cache" / "tinybert-edge"))


def data_digest(data: TextClassificationData) -> str:
    digest = hashlib.sha256()
    for i, text in enumerate(data.texts):
        digest.update(text.encode("utf-8", "surrogatepass"))
        if data.text_pairs is not None:
            digest.update(b"\x1f" + data.text_pairs[i].encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e" + data.label_names[data.labels[i]].encode())
    return digest.hexdigest()


def finetune(
    encoder: str | Path,
    train: TextClassificationData,
    dev: TextClassificationData,
    config: FinetuneConfig = FinetuneConfig(),
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune `encoder` on `train` for the data's task and return the folder of the resulting model.

    The folder lives in the cache under a key made of the encoder's weights, the training data and the settings,
    so a second call with the same inputs returns at once.
    """
    import torch

    from tinybert_edge.evaluation import evaluate_session
    from tinybert_edge.models import check_model_folder, load_model, load_tokenizer, save_model
    from tinybert_edge.runtime.sessions import TorchSession
    from tinybert_edge.tasks import get_task
    from tinybert_edge.training.loop import LoopSpec, pick_device, run_loop

    task = get_task(train.task)

    folder = check_model_folder(encoder, role="teacher")
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
        return target

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
                    warmup_ratio=config.warmup_ratio, seed=config.seed, max_length=config.max_length)
    log.info("teacher: fine-tuning %s on %d examples (%s)", folder, len(train), device)
    result = run_loop(spec, model, loss_fn, encoded_train, device=device, progress=progress)
    model.to("cpu")
    scored = evaluate_session(TorchSession(folder, model=model, task=task), encoded_dev)
    save_model(model, tokenizer, target)
    write_json_atomic(target / "finetune.json", {
        "encoder": str(folder), "task": task.name, "train_examples": len(train), "config": asdict(config),
        "dev_metrics": scored.metrics, "dev_accuracy": scored.metrics.get("accuracy"), "seconds": result.seconds,
        "examples_per_second": result.examples_per_second,
    })
    log.info("teacher: dev %s %.4f, saved to %s", task.primary_metric, scored.score, target)
    return target
