"""The one logging set-up of the SDK's programs: the `tinybert-edge` command line and the benchmark suites.

Library code only logs (`logging.getLogger(__name__)`); a program calls `configure_logging` once at start.
"""

from __future__ import annotations

import logging
import os
import sys


def configure_logging(quiet: bool = False) -> None:
    """Logging for a command-line program of the SDK (the CLI and the benchmark suites): the SDK's own progress at
    INFO (WARNING with `quiet`), other libraries only at WARNING."""
    # The SDK's own progress at INFO; other libraries only at WARNING (their INFO chatter is not actionable).
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(show_path=False)])
    else:  # a log file or CI: plain lines that do not wrap at 80 columns
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            datefmt="%H:%M:%S")
    logging.getLogger("tinybert_edge").setLevel(logging.WARNING if quiet else logging.INFO)
    for name in ("torchao", "absl", "jax", "torch._export", "torch.fx", "torch.utils._pytree", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
