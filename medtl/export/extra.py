"""The optional ``export`` extra (onnx, onnxruntime, onnxscript): imported only when needed."""

from __future__ import annotations

from ..errors import MedtlError


def require_onnx() -> None:
    """Import the ONNX stack or say which extra installs it."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MedtlError(f"ONNX export and inference need {', '.join(missing)}: pip install 'medtl[export]' "
                         "(or use --format torch-export, which needs only torch)")
