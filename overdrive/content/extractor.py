"""`MultiModalFeatureExtractor`: items in, fused item embeddings and descriptors out, in batches.

One encoder per modality behind the `Encoder` seam (text: sentence-transformers; image: CLIP;
video: sampled frames through the image encoder, audio track through the audio encoder; audio:
Whisper), text statistics (sentiment, language, quality), a content quality score, and `Fusion`
into `item_embedding_dim`. What is said in an item's audio — its `audio_url` and its video's
sound track — is transcribed by the audio encoder (descriptors ``audio_transcript`` and
``video_audio_transcript``) and joins the item's text: the text encoder embeds it after the text
and tags (see `text_input`), and the text statistics, language detection included, read it after
the text, so an item with speech and no text gets a text embedding and a language of its own.
Models load lazily — on `load()` (call it from a background task at start-up) or on the first
`extract` — never at construction or import. A modality whose weights are absent runs its
documented lighter descriptor and `health()` reports it as degraded.

Media are fetched by a `MediaLoader` (pass `media_loader`); the default one reads no local files
and fetches http(s) from public addresses only — build one with `file_roots` / `allowed_hosts`
(what `OVERDRIVE_MEDIA_ROOTS` / `OVERDRIVE_MEDIA_ALLOWED_HOSTS` configure) for more. A bad or
refused media reference never fails the batch: that field is recorded in `ContentFeatures.errors`
and the item is fused from what remains. With a `ContentCache`, content seen before (same hash) is
not encoded again, and identical content repeated within a batch is encoded once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from overdrive.domain.types import Item
from overdrive.content.audio import AudioEncoder, Waveform, decode_audio
from overdrive.content.cache import ContentCache, content_hash
from overdrive.content.fusion import Fusion
from overdrive.content.image import ImageEncoder, decode_image
from overdrive.content.media import MediaError, MediaLoader
from overdrive.content.metadata import content_quality
from overdrive.content.protocols import Encoder
from overdrive.content.text import SentenceTextEncoder
from overdrive.content.text_stats import TextAnalyzer
from overdrive.content.types import Encoded, ContentFeatures
from overdrive.content.video import VideoClip, VideoEncoder, read_video

log = logging.getLogger(__name__)

Parts = dict[str, list[tuple[str, np.ndarray]]]


def text_input(item: Item, transcript: str = "") -> str:
    """What the text encoder reads: the text, then the tags (they name the topic tersely), then
    the `transcript` of the item's speech (alone when the item has neither text nor tags)."""
    text = (item.text or "").strip()
    if item.tags:
        tags = ", ".join(t.lstrip("#") for t in item.tags)
        text = f"{text} Tags: {tags}." if text else tags
    transcript = transcript.strip()
    if transcript:
        text = f"{text} Transcript: {transcript}" if text else transcript
    return text


class MultiModalFeatureExtractor:
    """Extracts `ContentFeatures` for batches of items; see the module docstring."""

    def __init__(
        self,
        *,
        model_cache_dir: Path | str,
        item_embedding_dim: int = 128,
        text_encoder: Encoder[str] | None = None,
        image_encoder: ImageEncoder | None = None,
        audio_encoder: AudioEncoder | None = None,
        media_loader: MediaLoader | None = None,
        text_analyzer: TextAnalyzer | None = None,
        cache: ContentCache | None = None,
        text_backend: str = "auto",
        threads: int | None = None,
        fusion_weights: Mapping[str, float] | None = None,
        clip_text: bool = False,
        video_frames: int = 8,
        video_sampling: str = "uniform",
        seed: int = 0,
    ) -> None:
        cache_dir = Path(model_cache_dir)
        self._text: Encoder[str] = text_encoder or SentenceTextEncoder(
            model_cache_dir=cache_dir, backend=text_backend, threads=threads,
        )
        self._image = image_encoder or ImageEncoder(model_cache_dir=cache_dir)
        self._audio = audio_encoder or AudioEncoder(model_cache_dir=cache_dir)
        self._video = VideoEncoder(image_encoder=self._image)
        self._analyzer = text_analyzer or TextAnalyzer()
        self._media = media_loader or MediaLoader()  # no local files, public http(s) hosts only
        self._cache = cache
        self._fusion = Fusion(dim=item_embedding_dim, weights=fusion_weights, seed=seed)
        self._clip_text = clip_text
        self._video_frames = video_frames
        self._video_sampling = video_sampling
        self._seed = seed
        self._weights = dict(fusion_weights or {})
        self._load_lock = threading.Lock()
        self._loaded = False

    @property
    def dim(self) -> int:
        return self._fusion.dim

    @property
    def encoders(self) -> dict[str, Encoder[Any]]:
        return {"text": self._text, "image": self._image, "video": self._video, "audio": self._audio}

    def load(self) -> None:
        """Load every model now (idempotent). Missing weights degrade, they do not raise."""
        with self._load_lock:
            if self._loaded:
                return
            for encoder in self.encoders.values():
                encoder.load()
            self._analyzer.load()
            self._loaded = True

    def health(self) -> dict[str, Any]:
        """Per-encoder status for `/health/ready`; never triggers loading. The audio encoder's
        entry also names its `transcriber` (None: no transcripts)."""
        statuses = {name: enc.status().as_dict() for name, enc in self.encoders.items()}
        statuses["audio"]["transcriber"] = self._transcriber()
        return {
            "loaded": self._loaded,
            "degraded": sorted(n for n, s in statuses.items() if s["degraded"]),
            "encoders": statuses,
            "analyzers": self._analyzer.status() if self._loaded else {},
            "item_embedding_dim": self.dim,
        }

    def fingerprint(self) -> str:
        """Identity of everything that shapes the output; part of every cache key."""
        self.load()
        spaces = [f"{n}={_space(e)}/{e.dim}" for n, e in self.encoders.items()]
        raw = f"v1|{self.dim}|{self._seed}|{sorted(self._weights.items())}|{self._clip_text}|" \
              f"{self._video_frames}|{self._video_sampling}|{'|'.join(spaces)}|asr={self._transcriber()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) item-space embeddings of free texts, as if each were a text-only item."""
        self.load()
        encoded = self._text.encode(list(texts))
        clip = self._image.encode_text(list(texts)) if self._clip_text else None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(len(texts)):
            parts: Parts = {"text": [(encoded.space, encoded.vectors[i])]}
            if clip is not None:
                parts["text"].append((clip.space, clip.vectors[i]))
            out[i] = self._fusion.fuse(parts)
        return out

    def extract(self, items: Sequence[Item]) -> list[ContentFeatures]:
        """Features for every item, in order. Cached content is not recomputed."""
        if not items:
            return []
        fingerprint = self.fingerprint()
        hashes = [content_hash(it, fingerprint=fingerprint) for it in items]
        cached = self._cache.get_many(hashes) if self._cache is not None else {}
        first: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h not in cached:
                first.setdefault(h, i)
        todo = sorted(first.values())
        computed = self._compute([items[i] for i in todo], [hashes[i] for i in todo])
        if self._cache is not None:
            self._cache.put_many(computed)
        by_hash = {**cached, **{f.content_hash: f for f in computed}}
        return [dataclasses.replace(by_hash[h], item_id=it.id) for it, h in zip(items, hashes)]

    def close(self) -> None:
        self._media.close()

    # -- internals ---------------------------------------------------------------------------

    def _compute(self, items: Sequence[Item], hashes: Sequence[str]) -> list[ContentFeatures]:
        n = len(items)
        parts: list[Parts] = [{} for _ in range(n)]
        desc: list[dict[str, Any]] = [{} for _ in range(n)]
        errors: list[dict[str, str]] = [{} for _ in range(n)]
        self._add_media(items, "image_url", "image", self._image, _decode_image, parts, desc, errors)
        waves: list[tuple[int, str, Waveform]] = []
        clips = self._add_media(items, "video_url", "video", self._video, self._decode_video, parts, desc, errors)
        for i, clip in clips:
            if clip.audio is not None and clip.audio.samples.size:
                waves.append((i, "video_audio_", clip.audio))
        for i, wave in self._load_all(items, "audio_url", "audio", _decode_audio, errors):
            waves.append((i, "audio_", wave))
        speech: list[list[str]] = [[] for _ in range(n)]  # transcripts: video sound track, then audio_url
        if waves:
            encoded = self._audio.encode([w for _, _, w in waves])
            for (i, prefix, _), vec, d in zip(waves, encoded.vectors, encoded.descriptors):
                parts[i].setdefault("audio", []).append((encoded.space, vec))
                desc[i].update({f"{prefix}{k}": v for k, v in d.items()})
                if isinstance(d.get("transcript"), str) and d["transcript"].strip():
                    speech[i].append(d["transcript"].strip())
        self._add_text(items, [" ".join(t) for t in speech], parts, desc)
        out = []
        for i, item in enumerate(items):
            desc[i]["content_quality"] = content_quality(desc[i])
            present = tuple(m for m in ("text", "image", "video", "audio") if parts[i].get(m))
            degraded = tuple(m for m in present if self.encoders[m].degraded)
            out.append(ContentFeatures(
                item_id=item.id, content_hash=hashes[i], embedding=self._fusion.fuse(parts[i]),
                modalities=present, degraded=degraded, descriptors=desc[i], errors=errors[i],
            ))
        return out

    def _add_text(self, items: Sequence[Item], speech: Sequence[str], parts: list[Parts],
                  desc: list[dict[str, Any]]) -> None:
        """Text embedding and statistics of each item's text, tags and transcript (`speech`)."""
        rows = [i for i, it in enumerate(items) if text_input(it, speech[i])]
        if not rows:
            return
        texts = [text_input(items[i], speech[i]) for i in rows]
        encoded = self._text.encode(texts)
        clip = self._image.encode_text(texts) if self._clip_text else None
        said = [" ".join(filter(None, ((items[i].text or "").strip(), speech[i]))) for i in rows]
        stats = self._analyzer.analyze(said)
        for j, i in enumerate(rows):
            parts[i]["text"] = [(encoded.space, encoded.vectors[j])]
            if clip is not None:
                parts[i]["text"].append((clip.space, clip.vectors[j]))
            for key, value in stats[j].items():
                desc[i][key if key.startswith(("text_", "sentiment", "language")) else f"text_{key}"] = value

    def _add_media(self, items, field, modality, encoder, decode, parts, desc, errors) -> list[tuple[int, Any]]:
        loaded = self._load_all(items, field, modality, decode, errors)
        if not loaded:
            return []
        encoded: Encoded = encoder.encode([obj for _, obj in loaded])
        for (i, _), vec, d in zip(loaded, encoded.vectors, encoded.descriptors):
            parts[i][modality] = [(encoded.space, vec)]
            desc[i].update({f"{modality}_{k}": v for k, v in d.items()})
        return loaded

    def _load_all(
        self, items: Sequence[Item], field: str, kind: str,
        decode: Callable[[bytes, str], Any], errors: list[dict[str, str]],
    ) -> list[tuple[int, Any]]:
        out = []
        for i, item in enumerate(items):
            ref = getattr(item, field)
            if not ref:
                continue
            try:
                out.append((i, decode(self._media.load(ref, kind=kind, field=field).data, field)))
            except MediaError as exc:
                errors[i][field] = str(exc)
                log.info("item %s: %s unusable: %s", item.id, field, exc)
        return out

    def _transcriber(self) -> str | None:
        return getattr(self._audio, "transcriber", None)

    def _decode_video(self, data: bytes, field: str) -> VideoClip:
        return read_video(data, n_frames=self._video_frames, mode=self._video_sampling, field=field)


def _decode_image(data: bytes, field: str) -> Any:
    return decode_image(data, field=field)


def _decode_audio(data: bytes, field: str) -> Waveform:
    return decode_audio(data, field=field)


def _space(encoder: Encoder[Any]) -> str:
    return str(getattr(encoder, "space", None) or encoder.status().model)
