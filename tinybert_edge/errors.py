"""The SDK's exception types. Library code raises these; only the CLI turns them into a message and an exit code."""

from __future__ import annotations


class TinyBertEdgeError(Exception):
    """Base class of every error the SDK raises on purpose. Its message names the problem and the fix."""


class ConfigError(TinyBertEdgeError, ValueError):
    """A configuration field holds a value that is not allowed."""


class DataError(TinyBertEdgeError):
    """A data file or folder is missing, unreadable, empty or has the wrong columns or labels."""


class ModelError(TinyBertEdgeError):
    """A model folder is missing, incomplete, or disagrees with the data or the other model."""


class RunDirExistsError(TinyBertEdgeError):
    """An output folder already exists and overwriting was not asked for."""


class ParityError(TinyBertEdgeError):
    """An exported artifact disagrees with the PyTorch model beyond the configured thresholds."""


class ExportError(TinyBertEdgeError):
    """Exporting or quantizing a model failed."""


class DistillationError(TinyBertEdgeError):
    """Training diverged or cannot start or resume."""


class BenchmarkError(TinyBertEdgeError):
    """A measurement could not be taken."""


class MissingDependencyError(TinyBertEdgeError, ImportError):
    """An optional backend is not installed; the message carries the pip command that installs it."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed; "
            f"install it with: pip install 'tinybert-edge[{extra}]'"
        )
        self.package = package
        self.extra = extra


def require(module: str, *, package: str, extra: str, purpose: str):
    """Import `module` or raise MissingDependencyError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra, purpose) from exc


def require_training_stack(purpose: str) -> None:
    """Raise MissingDependencyError unless torch and transformers are installed (a device-side install of the
    bundle runtime has neither: `pip install tinybert-edge[runtime-onnx]`)."""
    import importlib.util

    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "train", purpose)


class BundleError(TinyBertEdgeError):
    """An on-device bundle is missing, truncated, tampered, unsafe (zip paths, symlinks) or of an unknown schema."""
