"""Video: frame sampling and metadata with PyAV, frame embeddings pooled, audio track split off.

Sampling (`mode`): ``"uniform"`` takes `n_frames` frames at the centres of equal slices of the
duration (seeking to the keyframe before each target and decoding forward, so long videos are
not decoded whole); ``"keyframes"`` decodes key frames only (cheap: no inter-frame decoding) and
keeps up to `n_frames` of them, evenly spread. Frames go through the image encoder in one batch
and are mean-pooled into one vector in the image encoder's space (CLIP, or the degraded
colour/texture descriptor). The audio track, if any, is decoded to 16 kHz mono (at most
`max_audio_s`) and returned for the audio encoder, which embeds it and transcribes its speech;
the extractor reports the transcript as ``video_audio_transcript`` and adds it to the item's text.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from overdrive.content.audio import Waveform, decode_audio
from overdrive.content.image import ImageEncoder
from overdrive.content.media import MediaError
from overdrive.content.types import Encoded, EncoderStatus

log = logging.getLogger(__name__)

SAMPLING_MODES = ("uniform", "keyframes")


@dataclass(frozen=True, slots=True)
class VideoClip:
    """Sampled frames (RGB PIL images) with their times, the clip's metadata and audio track."""

    frames: list[Any]
    timestamps: list[float]
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    audio: Waveform | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def descriptors(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 4),
            "fps": round(self.fps, 4),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "n_sampled_frames": len(self.frames),
            "has_audio": self.audio is not None,
        }


def read_video(
    data: bytes,
    *,
    n_frames: int = 8,
    mode: str = "uniform",
    max_side: int = 336,
    max_audio_s: float = 120.0,
    field: str | None = None,
) -> VideoClip:
    """Decode metadata, `n_frames` sampled frames and the audio track of a video file's bytes."""
    import av

    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}")
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise MediaError("no video stream", field=field)
            stream = container.streams.video[0]
            duration = _duration(container, stream)
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            width, height = stream.codec_context.width, stream.codec_context.height
            codec = stream.codec_context.name
            if mode == "keyframes":
                picked = _keyframes(container, stream, n_frames)
            else:
                picked = _uniform(container, stream, duration, n_frames)
        audio = None
        with av.open(io.BytesIO(data)) as container:
            if container.streams.audio:
                audio = decode_audio(container, field=field, max_seconds=max_audio_s)
    except av.error.FFmpegError as exc:
        raise MediaError(f"not a decodable video: {exc}", field=field) from exc
    if not picked:
        raise MediaError("video has no decodable frames", field=field)
    frames = []
    for _, frame in picked:
        img = frame.to_image()
        if max(img.size) > max_side:
            img.thumbnail((max_side, max_side))
        frames.append(img)
    if duration <= 0 and fps > 0:
        duration = stream.frames / fps if stream.frames else 0.0
    return VideoClip(
        frames=frames, timestamps=[round(t, 4) for t, _ in picked], duration_s=duration, fps=fps,
        width=int(width), height=int(height), codec=codec, audio=audio,
    )


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base
    return 0.0


def _frame_time(frame: Any, stream: Any) -> float:
    if frame.pts is not None and stream.time_base is not None:
        return float(frame.pts * stream.time_base) - float((stream.start_time or 0) * stream.time_base)
    return float(frame.time or 0.0)


def _uniform(container: Any, stream: Any, duration: float, n: int) -> list[tuple[float, Any]]:
    if duration <= 0:  # unknown length: decode in order and keep the first n
        out = []
        for frame in container.decode(stream):
            out.append((_frame_time(frame, stream), frame))
            if len(out) >= n:
                break
        return out
    targets = [(i + 0.5) * duration / n for i in range(n)]
    start = int(stream.start_time or 0)
    picked: list[tuple[float, Any]] = []
    for target in targets:
        container.seek(start + int(Fraction(target) / stream.time_base), stream=stream, backward=True)
        best = None
        for frame in container.decode(stream):
            t = _frame_time(frame, stream)
            best = (t, frame)
            if t >= target - 0.5 / max(float(stream.average_rate or 25), 1.0):
                break
        if best is not None:
            picked.append(best)
    return picked


def _keyframes(container: Any, stream: Any, n: int) -> list[tuple[float, Any]]:
    stream.codec_context.skip_frame = "NONKEY"
    keys = [(_frame_time(f, stream), f) for f in container.decode(stream)]
    if len(keys) <= n:
        return keys
    return [keys[int(round(i))] for i in np.linspace(0, len(keys) - 1, n)]


class VideoEncoder:
    """Pooled frame embeddings in the image encoder's space; metadata as descriptors."""

    modality = "video"

    def __init__(self, *, image_encoder: ImageEncoder) -> None:
        self._image = image_encoder

    @property
    def dim(self) -> int:
        return self._image.dim

    @property
    def degraded(self) -> bool:
        return self._image.degraded

    @property
    def space(self) -> str:
        return self._image.space

    def load(self) -> None:
        self._image.load()

    def status(self) -> EncoderStatus:
        img = self._image.status()
        reason = f"frames use the image fallback: {img.reason}" if img.degraded else None
        return EncoderStatus("video", f"frames→{img.model}", img.dim, img.loaded, img.degraded, reason)

    def encode(self, batch: Sequence[VideoClip]) -> Encoded:
        self.load()
        frames = [f for clip in batch for f in clip.frames]
        per_frame = self._image.encode(frames)
        out = np.zeros((len(batch), self._image.dim), dtype=np.float32)
        pos = 0
        descriptors = []
        for row, clip in enumerate(batch):
            k = len(clip.frames)
            if k:
                out[row] = per_frame.vectors[pos : pos + k].mean(axis=0)
                stats = per_frame.descriptors[pos : pos + k]
                pos += k
            else:
                stats = []
            desc = clip.descriptors()
            for key in ("brightness", "contrast", "sharpness", "colourfulness"):
                if stats:
                    desc[f"frame_{key}"] = round(float(np.mean([s[key] for s in stats])), 6)
            descriptors.append(desc)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return Encoded(out, self._image.space, descriptors)
