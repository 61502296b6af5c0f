"""Image embeddings from CLIP (``MODEL_CACHE_DIR/clip``), with a colour/texture fallback.

CLIP: a transformers `CLIPModel` folder written with ``save_pretrained`` (config.json, weights,
preprocessor_config.json and, for the text tower, tokenizer files). Images and texts are embedded
with `get_image_features` / `get_text_features` into the same projection space, so
`encode_text` gives vectors directly comparable with image vectors. The PIL-based image
processor is used (torchvision is deliberately not a dependency).

Degraded mode, when the folder is absent or fails to load (`degraded` True, `status().reason`
says why) — a 94-dimensional descriptor of a 128-px thumbnail: a 72-bin HSV colour histogram
(8 hue × 3 saturation × 3 value), an 8-bin gradient-orientation histogram weighted by magnitude,
and 14 global statistics (brightness, contrast, colourfulness, edge density, sharpness, per-channel
means and deviations, aspect ratio); histograms are square-rooted (Hellinger) and centred so
that unrelated images do not all look alike. It finds near-duplicates and palette/texture
neighbours, nothing semantic.

Every image also gets cheap scalar descriptors (size, brightness, contrast, colourfulness,
sharpness) whichever mode is active; the quality score uses them.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from overdrive.content._util import FolderModelEncoder, folder_fingerprint
from overdrive.content._util import l2_normalise as _normalise
from overdrive.content.media import MediaError
from overdrive.content.types import Encoded

log = logging.getLogger(__name__)

MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding them
DESCRIPTOR_DIM = 94


def decode_image(data: bytes, *, field: str | None = None, max_side: int = 512) -> Any:
    """Bytes → RGB PIL image no larger than `max_side`; `MediaError` if not a decodable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise MediaError(f"image of {img.width}x{img.height} pixels is too large", field=field)
        img.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale, much faster
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a decodable image: {exc}", field=field) from exc
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    return img


def image_stats(img: Any) -> tuple[dict[str, float], np.ndarray]:
    """Scalar descriptors and the degraded-mode descriptor vector of one RGB image."""
    width, height = img.size
    thumb = img.copy()
    thumb.thumbnail((128, 128))
    rgb = np.asarray(thumb, dtype=np.float32) / 255.0
    hsv = np.asarray(thumb.convert("HSV"), dtype=np.float32) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    lap = (
        np.roll(gray, 1, 0) + np.roll(gray, -1, 0) + np.roll(gray, 1, 1) + np.roll(gray, -1, 1) - 4 * gray
    )[1:-1, 1:-1]
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    stats = {
        "width": int(width),
        "height": int(height),
        "aspect_ratio": round(width / height, 4) if height else 0.0,
        "brightness": round(float(gray.mean()), 4),
        "contrast": round(float(gray.std()), 4),
        "colourfulness": round(colourfulness, 4),
        "edge_density": round(float((mag > 0.1).mean()), 4),
        "sharpness": round(float(lap.var()) if lap.size else 0.0, 6),
    }
    h_bin = np.minimum((hsv[..., 0] * 8).astype(int), 7)
    s_bin = np.minimum((hsv[..., 1] * 3).astype(int), 2)
    v_bin = np.minimum((hsv[..., 2] * 3).astype(int), 2)
    colour = np.bincount((h_bin * 9 + s_bin * 3 + v_bin).ravel(), minlength=72).astype(np.float32)
    colour /= max(colour.sum(), 1.0)
    angle = (np.arctan2(gy, gx) % np.pi) / np.pi
    texture = np.bincount(np.minimum((angle * 8).astype(int), 7).ravel(), weights=mag.ravel(), minlength=8)
    texture = texture.astype(np.float32) / max(float(texture.sum()), 1e-6)
    glob = np.array(
        [stats["brightness"], stats["contrast"], colourfulness, stats["edge_density"],
         min(stats["sharpness"] * 50, 1.0), *rgb.reshape(-1, 3).mean(0), *rgb.reshape(-1, 3).std(0),
         np.log(max(stats["aspect_ratio"], 1e-3)), float(mag.mean()), float(hsv[..., 1].mean())],
        dtype=np.float32,
    )
    vec = np.concatenate([
        np.sqrt(colour) - np.sqrt(1 / 72), np.sqrt(texture) - np.sqrt(1 / 8), 0.5 * (glob - 0.5),
    ])
    return stats, vec


class ImageEncoder(FolderModelEncoder):
    """CLIP image (and text) embeddings, degrading to colour/texture descriptors."""

    modality = "image"
    model_kind, folder, spaces = "CLIP", "clip", ("clip", "image-descriptor")
    fallback_name, fallback_dim = "colour-texture-v1", DESCRIPTOR_DIM

    def __init__(self, *, model_cache_dir: Path | None = None, model_dir: Path | None = None, batch_size: int = 16) -> None:
        super().__init__(model_cache_dir=model_cache_dir, model_dir=model_dir)
        self._batch_size = batch_size
        self._processor: Any = None
        self._tokenizer: Any = None

    @property
    def supports_text(self) -> bool:
        """True when `encode_text` can embed texts into this encoder's (CLIP) space."""
        self.load()
        return self._tokenizer is not None

    def encode(self, batch: Sequence[Any]) -> Encoded:
        """PIL images → (n, dim) L2-normalised vectors plus scalar descriptors per image."""
        self.load()
        stats, vecs = zip(*(image_stats(img) for img in batch)) if batch else ((), ())
        if self._model is None:
            out = np.stack(vecs) if vecs else np.zeros((0, self._dim), np.float32)
            return Encoded(_normalise(out), self.space, list(stats))
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(batch), self._batch_size):
                pixels = self._processor(images=list(batch[start : start + self._batch_size]), return_tensors="pt")
                chunks.append(_as_tensor(self._model.get_image_features(pixel_values=pixels["pixel_values"])).numpy())
        out = np.concatenate(chunks) if chunks else np.zeros((0, self._dim), np.float32)
        return Encoded(_normalise(out), self.space, list(stats))

    def encode_text(self, texts: Sequence[str]) -> Encoded | None:
        """CLIP text embeddings in the image space, or None without a CLIP text tower."""
        if not self.supports_text:
            return None
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                tok = self._tokenizer(
                    [t or "" for t in texts[start : start + 64]], padding=True, truncation=True,
                    max_length=self._max_text_len, return_tensors="pt",
                )
                feats = self._model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
                chunks.append(_as_tensor(feats).numpy())
        out = np.concatenate(chunks) if chunks else np.zeros((0, self._dim), np.float32)
        return Encoded(_normalise(out), self.space, [{} for _ in texts])

    def _unload(self) -> None:
        self._processor = self._tokenizer = None

    def _load_model(self, folder: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoTokenizer, CLIPModel

        try:  # transformers ≥ 5 names the PIL backend explicitly; older ones have only the PIL one
            from transformers import CLIPImageProcessorPil as Processor
        except ImportError:
            from transformers import CLIPImageProcessor as Processor

        model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
        self._processor = Processor.from_pretrained(str(folder), local_files_only=True)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            log.warning("CLIP at %s has no usable tokenizer (%s): image embeddings only", folder, exc)
            self._tokenizer = None
        self._max_text_len = int(model.config.text_config.max_position_embeddings)
        self._model = model
        self._dim = int(model.config.projection_dim)
        self._name = f"{folder.name}-{folder_fingerprint(folder)}"


def _as_tensor(out: Any) -> Any:
    """`get_*_features` returns a tensor, or (newer transformers) an output with `pooler_output`."""
    return out if hasattr(out, "numpy") else out.pooler_output

