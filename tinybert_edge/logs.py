"""The one logging set-up of the SDK's programs: the `tinybert-edge` command line and the benchmark suites.

Library code only logs (`logging.getLogger(__name__)`); a program calls `configure_logging` once at start. By
default a program says what the SDK does and nothing else: third-party warnings, log records and native-library
banners (TracerWarnings, ONNX Runtime's pre-processing advice, absl/oneDNN/XNNPACK lines, FutureWarnings,
LiteRT-Torch's conversion steps) only appear with `verbose`, because a user cannot act on them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from typing import Iterator, TextIO

SDK_LOGGER = "tinybert_edge"


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever `sys.stderr` is when a record arrives, not when the handler was made, so
    that logging follows `program_output`'s redirection in and out of a command."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ and setStream assign it; sys.stderr wins
        pass


def configure_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Logging for a command-line program of the SDK (the CLI and the benchmark suites).

    The SDK's own progress at INFO (WARNING with `quiet`, DEBUG with `verbose`). Other libraries: errors only, and
    their Python warnings hidden; with `verbose`, their warnings and WARNING records as well (their INFO chatter is
    never actionable).
    """
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        # Console(stderr=True): rich's default console is stdout, which is for the program's result.
        logging.basicConfig(level=logging.WARNING, format="%(message)s",
                            handlers=[RichHandler(console=Console(stderr=True), show_path=False)])
    else:  # a log file or CI: plain lines that do not wrap at 80 columns
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            datefmt="%H:%M:%S", handlers=[_StderrHandler()])
    # The root level decides for every library that sets none of its own (ONNX Runtime's fusion and quantization
    # advice log at WARNING through the root logger or their own); the SDK's logger sets its own level.
    logging.getLogger().setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.getLogger(SDK_LOGGER).setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    for name in ("torchao", "absl", "jax", "torch._export", "torch.fx", "torch.utils._pytree", "onnxscript"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=rf"{SDK_LOGGER}(\..*)?$")  # the SDK's own warnings still show
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # 60 lines of conversion steps on stdout
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _real_fd(stream: TextIO, expected: int) -> bool:
    try:
        return stream.fileno() == expected
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False  # a captured or replaced stream (pytest, a notebook): no file descriptor to redirect


@contextlib.contextmanager
def program_output(verbose: bool = False) -> Iterator[TextIO]:
    """Keep a program's stdout for its result. Yields the stream to print the result on.

    Inside the block, whatever else is printed to `sys.stdout` (libraries' progress and banners) goes to stderr,
    so `tinybert-edge pipeline > report.md` holds the report only. Native libraries (TensorFlow Lite, absl, oneDNN)
    write straight to file descriptors 1 and 2; those writes are dropped unless `verbose`, while the SDK's own
    logging, progress bars and error line keep the real stderr (a duplicate of descriptor 2). Where the streams
    have no descriptors (captured by pytest), only the Python-level redirection applies.
    """
    result, error = sys.stdout, sys.stderr
    if not (_real_fd(result, 1) and _real_fd(error, 2)):
        sys.stdout = error
        try:
            yield result
        finally:
            sys.stdout = result
        return
    result.flush()
    error.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    real_out = os.fdopen(saved_out, "w", buffering=1, encoding=result.encoding, errors="replace")
    real_err = os.fdopen(saved_err, "w", buffering=1, encoding=error.encoding, errors="backslashreplace")
    sink = os.dup(saved_err) if verbose else os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(sink)
    sys.stdout, sys.stderr = real_err, real_err
    try:
        yield real_out
    finally:
        real_out.flush()
        real_err.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        sys.stdout, sys.stderr = result, error
        real_out.close()
        real_err.close()
