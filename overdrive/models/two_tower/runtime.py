"""Running the user tower at serving time: torch eager, TorchScript or ONNX Runtime.

All three compute the same function from the same weights (tests compare them); they differ in
per-call overhead, which dominates for one user at a time. `python -m benchmarks.bench_two_tower`
measures them; `DEFAULT_RUNTIME` is the one it found fastest, and "auto" means that one, falling
back to eager when it cannot be built (e.g. onnxruntime missing).
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Callable

import numpy as np
import torch

from overdrive.models.two_tower.network import UserTower

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "torchscript", "onnx")
# Measured by benchmarks/bench_two_tower.py (docs/benchmarks.md#two-tower-model).
DEFAULT_RUNTIME = "onnx"
_INPUTS = ("users", "seq_vec", "seq_type", "seq_rec", "seq_pos", "seq_w", "seq_sign")

UserInputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _example(dim: int) -> tuple[torch.Tensor, ...]:
    b, length = 2, 3
    return (
        torch.tensor([1, 0]), torch.zeros(b, length, dim), torch.zeros(b, length, dtype=torch.int64),
        torch.ones(b, length, dtype=torch.int64), torch.ones(b, length, dtype=torch.int64),
        torch.ones(b, length), torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, 0.0]]),
    )


def build_runner(tower: UserTower, runtime: str, *, dim: int, threads: int = 1) -> tuple[str, Callable[[UserInputs], np.ndarray]]:
    """(the runtime actually used, a function inputs → (B, dim) float32 user vectors)."""
    tower = tower.eval()
    if runtime == "auto":
        runtime = DEFAULT_RUNTIME
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES} or 'auto'")
    try:
        if runtime == "onnx":
            return "onnx", _onnx_runner(tower, dim, threads)
        if runtime == "torchscript":
            return "torchscript", _torchscript_runner(tower, dim)
    except Exception as exc:  # noqa: BLE001 — a missing or broken runtime must not break serving
        log.warning("two-tower: %s runtime unavailable (%s: %s); using torch eager", runtime, type(exc).__name__, exc)
    return "eager", _eager_runner(tower)


def _eager_runner(tower: UserTower) -> Callable[[UserInputs], np.ndarray]:
    def run(inputs: UserInputs) -> np.ndarray:
        with torch.inference_mode():
            return tower(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)).numpy()

    return run


def _torchscript_runner(tower: UserTower, dim: int) -> Callable[[UserInputs], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            traced = torch.jit.trace(tower, _example(dim), check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    lock = threading.Lock()  # TorchScript modules are thread-safe, but one call at a time is cheaper

    def run(inputs: UserInputs) -> np.ndarray:
        with lock, torch.inference_mode():
            return frozen(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)).numpy()

    return run


def export_onnx(tower: UserTower, dim: int) -> bytes:
    """The user tower as an ONNX model (batch and sequence length dynamic)."""
    buf = io.BytesIO()
    dynamic = {"users": {0: "b"}, "seq_vec": {0: "b", 1: "l"}, "user_vector": {0: "b"}}
    dynamic.update({name: {0: "b", 1: "l"} for name in _INPUTS[2:]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tower.eval(), _example(dim), buf, dynamo=False, input_names=list(_INPUTS),
                          output_names=["user_vector"], dynamic_axes=dynamic, opset_version=17)
    return buf.getvalue()


def _onnx_runner(tower: UserTower, dim: int, threads: int) -> Callable[[UserInputs], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(export_onnx(tower, dim), sess_options=options, providers=["CPUExecutionProvider"])

    def run(inputs: UserInputs) -> np.ndarray:
        feed = {name: np.ascontiguousarray(x) for name, x in zip(_INPUTS, inputs)}
        return session.run(None, feed)[0]

    return run
