"""Dynamic int8 in eager PyTorch, the CPU baseline the exported int8 artifacts are compared with.

Uses torch.ao.quantization.quantize_dynamic (fbgemm/qnnpack int8 kernels for nn.Linear). torchao's
Int8DynamicActivationInt8WeightConfig also runs on CPU with torch 2.13, but in eager mode it has no fast CPU
kernel: measured here (AVX2, 1 thread, 384->1536->384 linears, seq 128) 818 ms against 15 ms fp32 and 19 ms for
quantize_dynamic, so it would misrepresent what int8 PyTorch costs. torch.ao warns that it is deprecated; the
warning is silenced here because it names no replacement with CPU kernels.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

log = logging.getLogger(__name__)

METHOD = "torch.ao.quantization.quantize_dynamic(nn.Linear, qint8)"


def dynamic_int8(model: Any) -> Any:
    """A copy of `model` with every nn.Linear replaced by a dynamically quantized int8 Linear (weights int8 per
    tensor, activations quantized per batch). The input model is left unchanged."""
    import torch

    engines = torch.backends.quantized.supported_engines
    # fbgemm is the x86 engine, qnnpack the ARM one; "none" alone means this torch build has no int8 kernels.
    for engine in ("fbgemm", "x86", "qnnpack"):
        if engine in engines:
            torch.backends.quantized.engine = engine
            break
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=FutureWarning)
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8
        )
    log.info("PyTorch dynamic int8 with %s on engine '%s'", METHOD, torch.backends.quantized.engine)
    return quantized
