"""Run a sentence-transformers folder through ONNX Runtime (optionally int8) instead of PyTorch.

Why: on the 2-core CPUs we deploy on, PyTorch fp32 MiniLM tops out near the 300 short items/s
the service needs, while ONNX Runtime with dynamically quantised int8 weights is ~1.5–2× faster
with embeddings at cosine ≈ 0.99 to the fp32 ones (measured by benchmarks/bench_content.py and
checked in tests). It also starts in well under a second: once compiled, loading needs neither
torch nor transformers, only `onnxruntime` and `tokenizers`.

The model is compiled once from the same folder (torch's exporter, then ONNX Runtime's dynamic
quantiser) into `compiled_dir`, under a name derived from a hash of the folder's weights and
configuration, written atomically; later starts load the compiled file. Only the plain
Transformer → Pooling (mean or CLS) → optional Normalize pipelines are supported; `supported()`
says so and callers fall back to sentence-transformers for anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_FORMAT_VERSION = "1"
_PLAIN_MODULES = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def supported(model_dir: Path) -> str | None:
    """None if `model_dir` can run on ONNX Runtime here, else the reason it cannot."""
    try:
        import onnx  # noqa: F401  (needed by the quantiser)
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    if not (model_dir / "tokenizer.json").is_file():
        return "no tokenizer.json (fast tokenizer) in the model folder"
    if not any((model_dir / w).is_file() for w in _WEIGHT_FILES):
        return "no model.safetensors / pytorch_model.bin in the model folder"
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        pooling = _pooling_mode(model_dir, modules)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        return f"unreadable sentence-transformers configuration ({exc})"
    types = tuple(m["type"] for m in modules)
    if not types or types[0] != _PLAIN_MODULES[0] or any(t not in _PLAIN_MODULES for t in types):
        return f"module pipeline {list(types)} is not Transformer→Pooling→Normalize"
    if pooling is None:
        return "pooling mode other than mean or CLS"
    return None


def compiled_path(model_dir: Path, compiled_dir: Path, *, quantize: bool) -> Path:
    """Where the compiled model for `model_dir` lives (whether or not it exists yet)."""
    digest = hashlib.sha256(_FORMAT_VERSION.encode())
    for name in ("config.json", "modules.json", "sentence_bert_config.json", *_WEIGHT_FILES):
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    suffix = "int8" if quantize else "fp32"
    return compiled_dir / f"text-{digest.hexdigest()[:16]}-{suffix}.onnx"


def compile_model(model_dir: Path, target: Path) -> Path:
    """Export (and, for an ``-int8`` target, quantise) `model_dir` to `target`, atomically."""
    import torch
    from transformers import AutoModel

    target.parent.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings concern shapes we keep dynamic
        fp32 = Path(tmp) / "model.onnx"
        ids = torch.ones((2, 8), dtype=torch.long)
        with torch.inference_mode():
            torch.onnx.export(
                _Hidden(model), (ids, torch.ones_like(ids)), str(fp32),
                input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "hidden")},
                opset_version=17, dynamo=False,
            )
        out = fp32
        if target.name.endswith("-int8.onnx"):
            from onnxruntime.quantization import QuantType, quantize_dynamic

            out = Path(tmp) / "model-int8.onnx"
            quiet = _QuietQuantiser()
            logging.getLogger().addFilter(quiet)  # it logs dozens of INFO lines on the root logger
            try:
                quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.getLogger().removeFilter(quiet)
        partial = target.with_suffix(".partial")
        shutil.copyfile(out, partial)
        os.replace(partial, target)
    log.info("compiled text model %s -> %s", model_dir, target)
    return target


class OnnxSentenceModel:
    """Tokenise with the folder's fast tokenizer, run the compiled graph, pool and normalise."""

    def __init__(self, *, model_dir: Path, onnx_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        st_cfg = _read_json(model_dir / "sentence_bert_config.json")
        cfg = _read_json(model_dir / "config.json")
        limit = min(int(st_cfg.get("max_seq_length", 256)), int(cfg.get("max_position_embeddings", 512)))
        self._lower = bool(st_cfg.get("do_lower_case", False))
        modules = json.loads((model_dir / "modules.json").read_text())
        self._pooling = _pooling_mode(model_dir, modules)
        self._normalize = any(m["type"].endswith(".Normalize") for m in modules)
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok_cfg = _read_json(model_dir / "tokenizer_config.json")
        pad_token = tok_cfg.get("pad_token") if isinstance(tok_cfg.get("pad_token"), str) else "[PAD]"
        pad_id = tok.token_to_id(pad_token) or 0
        tok.enable_truncation(max_length=limit)
        tok.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest in the batch
        self._tokenizer = tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: the CPU they would burn serves requests.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.dim = int(cfg.get("hidden_size") or self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """(n, dim) float32 sentence embeddings, batches formed from length-sorted texts."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if self._lower:
            texts = [t.lower() for t in texts]
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encs = self._tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if self._pooling == "cls":
                pooled = hidden[:, 0, :]
            else:
                m = mask[..., None].astype(np.float32)
                pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            out[rows] = pooled
        if self._normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return out


class _QuietQuantiser(logging.Filter):
    """Drops onnxruntime's INFO records logged directly on the root logger (only those)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in record.pathname


def _pooling_mode(model_dir: Path, modules: list[dict]) -> str | None:
    pooling = next(m for m in modules if m["type"].endswith(".Pooling"))
    cfg = json.loads((model_dir / pooling["path"] / "config.json").read_text())
    flags = {k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True}
    if flags == {"pooling_mode_mean_tokens"}:
        return "mean"
    if flags == {"pooling_mode_cls_token"}:
        return "cls"
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
