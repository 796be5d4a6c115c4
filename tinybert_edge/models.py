"""Loading teachers and students from local Hugging Face folders, and building students.

Weights are read from safetensors only (or a `.bin` with `weights_only=True` loading); remote code never runs.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.errors import ModelError
from tinybert_edge.io import resolve_path

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")

# Named student shapes (TinyBERT paper, section 4.1). Width/heads/FFN/depth; vocabulary comes from the teacher.
STUDENT_PRESETS: dict[str, dict[str, int]] = {
    "tinybert-4l-312h": {"num_hidden_layers": 4, "hidden_size": 312, "intermediate_size": 1200, "num_attention_heads": 12},
    "tinybert-6l-768h": {"num_hidden_layers": 6, "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
    # Not from the paper: narrower edge shapes whose 8 heads keep the MiniLM/BERT head width of 32 (TinyBERT4's are
    # 26 wide), meant for `from-teacher:` initialisation. At this size each layer's fixed costs matter: on two cores
    # a 4-layer student's int8 ONNX ran at ~2.6 ms per GFLOP against ~1.95 for 3 x 384 (the sst2 suite's notes).
    "edge-4l-256h": {"num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 8},
    "edge-3l-256h": {"num_hidden_layers": 3, "hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 8},
}


# Why encoders close to BERT are refused, so that the message says what would have to change (not just "no").
UNSUPPORTED_ARCHITECTURES: dict[str, str] = {
    "distilbert": "DistilBERT has no token-type embeddings and keeps its layers under other names "
                  "(transformer.layer), which the student builder, the layer map and the exported graph's inputs "
                  "assume",
    "roberta": "RoBERTa-family encoders tokenize with byte-level BPE and offset position ids by the padding index, "
               "which the on-device WordPiece tokenizer, the bundle and the exported graphs do not handle",
    "xlm-roberta": "XLM-RoBERTa tokenizes with SentencePiece and offsets position ids by the padding index, which "
                   "the on-device WordPiece tokenizer, the bundle and the exported graphs do not handle",
    "camembert": "CamemBERT is a RoBERTa-family encoder (SentencePiece, offset position ids), which the on-device "
                 "WordPiece tokenizer, the bundle and the exported graphs do not handle",
    "electra": "ELECTRA's embeddings are projected to a different width, which the student builder does not do",
    "albert": "ALBERT shares one layer's weights across depth and factorises its embeddings, so there are no "
              "separate teacher layers to map students onto",
}
SUPPORTED_ARCHITECTURES = "model_type 'bert': BERT, MiniLM (all-MiniLM-L6-v2), TinyBERT, BERT-based sentence encoders"


def _looks_like_hub_id(text: str) -> bool:
    """'bert-base-uncased' or 'org/name': no path prefix, at most one '/', Hugging Face's allowed characters."""
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", text)) and not text.endswith((".", "-"))


def _from_hf_cache(repo_id: str) -> Path | None:
    """The local snapshot of a Hugging Face model id, or None when it is not in the cache; never downloads."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError:  # huggingface_hub comes with transformers; without it there is no cache to look in
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError, ValueError):
        return None


def resolve_model_path(path: str | Path, role: str = "model") -> Path:
    """A local model folder for `path`: a folder, a `pkg://` path, or a Hugging Face model id found in the local
    Hugging Face cache (offline: nothing is downloaded; a model that is not cached is a ModelError that says how to
    get it)."""
    folder = resolve_path(path)
    text = str(path)
    if folder.exists() or not _looks_like_hub_id(text):
        return folder
    cached = _from_hf_cache(text)
    if cached is not None:
        log.info("%s: '%s' from the local Hugging Face cache (%s)", role, text, cached)
        return cached
    raise ModelError(
        f"{role} '{text}' is neither a local folder nor a model in the local Hugging Face cache; tinybert-edge never "
        f"downloads, so fetch it once (huggingface-cli download {text}, or from_pretrained on a machine with network "
        "and copy the cache) or pass a local model folder"
    )


def _missing_folder_hint(folder: Path) -> str:
    import difflib

    if not folder.parent.is_dir():
        return ""
    names = sorted(p.name for p in folder.parent.iterdir() if p.is_dir())
    close = difflib.get_close_matches(folder.name, names, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(n) for n in close)}?)" if close else ""


def check_model_folder(path: str | Path, role: str = "model") -> Path:
    """Return the folder if it holds a config and weights; otherwise raise a ModelError that says what is missing."""
    folder = resolve_model_path(path, role)
    if not folder.is_dir():
        raise ModelError(f"{role} folder '{folder}' does not exist{_missing_folder_hint(folder)}; pass a local "
                         "Hugging Face model folder or the id of a model in the local Hugging Face cache")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{role} folder '{folder}' has no config.json; it must be saved with save_pretrained")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(
            f"{role} folder '{folder}' has no weights (expected one of {', '.join(WEIGHT_FILES)}); "
            "save the model with save_pretrained(safe_serialization=True)"
        )
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{role} folder '{folder}' has an unreadable config.json ({exc}); save the model again "
                         "with save_pretrained") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{role} folder '{folder}' has a config.json that is not a JSON object; save the model again "
                         "with save_pretrained")
    model_type = config.get("model_type")
    if model_type != "bert":
        reason = UNSUPPORTED_ARCHITECTURES.get(str(model_type))
        raise ModelError(
            f"{role} folder '{folder}' holds a '{model_type}' model; tinybert-edge distils BERT-architecture "
            f"encoders ({SUPPORTED_ARCHITECTURES})"
            + (f", and is refused here because {reason}" if reason else "")
            + "; use a BERT-architecture teacher"
        )
    return folder


def _weights_kwargs(folder: Path) -> dict[str, Any]:
    has_safetensors = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
    return {"use_safetensors": has_safetensors, "trust_remote_code": False}


def _from_pretrained(model_class: Any, folder: Path, role: str, **kwargs: Any):
    """`from_pretrained` with unreadable weights (truncated or corrupted safetensors, a .bin that is not a
    weights-only torch archive) turned into a ModelError that names the file."""
    from safetensors import SafetensorError

    try:
        return model_class.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError, EOFError, SafetensorError, pickle.UnpicklingError) as exc:
        weights = next((name for name in WEIGHT_FILES if (folder / name).is_file()), "the weights")
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{role} folder '{folder}': {weights} cannot be loaded ({first_line[:300]}); pickled weights are only "
            "read as plain tensors (weights_only), so re-save the model with save_pretrained(safe_serialization=True)"
        ) from exc


def load_model(path: str | Path, task: Any = None, label_names: Sequence[str] | None = None, role: str = "model"):
    """Load the fine-tuned model of `task` from a local folder (the task is read from its config.json when None).

    A folder that already holds a model of the task keeps its head; when `label_names` is given they must be the
    model's labels by name (order may differ only if the caller re-indexes the data). A bare encoder gets a new head
    for `label_names` (what fine-tuning starts from).
    """
    from transformers import AutoConfig

    from tinybert_edge.tasks import TASKS, get_task, task_of_config
    from tinybert_edge.tasks.base import read_model_config

    folder = check_model_folder(path, role)
    config = read_model_config(folder)
    task = get_task(task) if task is not None else task_of_config(config, f"{role} folder '{folder}'")
    kwargs = _weights_kwargs(folder)
    if task.matches(config):
        model = _from_pretrained(task.model_class(), folder, role, **kwargs)
        if label_names is not None:
            task.check_labels(model.config, label_names, folder)
        return model
    other = next((name for name in TASKS if name != task.name and get_task(name).matches(config)), None)
    if other is not None:
        raise ModelError(
            f"{role} folder '{folder}' is a fine-tuned {other} model, but the data is for {task.name}; use a "
            f"{task.name} model, or the bare encoder it was fine-tuned from (it gets a new {task.name} head)"
        )
    head = task.head_config(label_names)
    if label_names is None and head is None:
        raise ModelError(
            f"{role} folder '{folder}' is an encoder without a {task.name} head; fine-tune it first "
            "(tinybert-edge finetune) or give the label names"
        )
    hf_config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    for key, value in (head or {}).items():
        setattr(hf_config, key, value)
    hf_config.architectures = [task.architecture]
    # A folder fine-tuned for another task may hold a head under the same name (classifier.*) with another shape;
    # the new head starts from scratch whatever the folder holds there.
    return _from_pretrained(task.model_class(), folder, role, config=hf_config, ignore_mismatched_sizes=True,
                            **kwargs)


def load_classifier(path: str | Path, label_names: Sequence[str] | None = None, role: str = "model"):
    """A sequence classifier from a local folder: `load_model` for the text-classification task."""
    return load_model(path, "text-classification", label_names, role)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    folder = resolve_model_path(path)
    if folder.is_dir() and not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise ModelError(f"no tokenizer in '{folder}': it needs vocab.txt or tokenizer.json; save the tokenizer "
                         "beside the model (tokenizer.save_pretrained)")
    try:
        return AutoTokenizer.from_pretrained(folder, use_fast=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"no tokenizer in '{folder}' ({exc}); the folder needs vocab.txt or tokenizer.json") from exc


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Write model (safetensors) and tokenizer to `folder` atomically."""
    from tinybert_edge.io import atomic_path

    with atomic_path(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(folder)
