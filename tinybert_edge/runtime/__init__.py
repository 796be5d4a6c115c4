"""Inference sessions behind one interface: PyTorch, ONNX Runtime and LiteRT take the same numpy batch and
return float32 logits. The ONNX Runtime and LiteRT sessions import neither torch nor transformers."""

from tinybert_edge.runtime.sessions import SESSIONS, InferenceSession, open_session

__all__ = ["SESSIONS", "InferenceSession", "open_session"]
