"""Image, audio and video encoders on real generated files, through the real model loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overdrive.content.audio import AudioEncoder, audio_stats, decode_audio
from overdrive.content.image import DESCRIPTOR_DIM, ImageEncoder, decode_image
from overdrive.content.media import MediaError, MediaLoader
from overdrive.content.video import VideoEncoder, read_video
from tests.unit.content.mediafiles import data_url, write_mp4, write_png, write_wav


@pytest.fixture(scope="module")
def clip(model_cache_dir: Path) -> ImageEncoder:
    enc = ImageEncoder(model_cache_dir=model_cache_dir)
    enc.load()
    return enc


@pytest.fixture(scope="module")
def whisper(model_cache_dir: Path) -> AudioEncoder:
    enc = AudioEncoder(model_cache_dir=model_cache_dir)
    enc.load()
    return enc


# -- image ---------------------------------------------------------------------------------------


def test_clip_loads_from_model_cache_dir_and_shares_text_space(clip: ImageEncoder, tmp_path: Path) -> None:
    status = clip.status()
    assert status.loaded and not status.degraded and status.model.startswith("clip:")
    red = decode_image(write_png(tmp_path / "r.png", (220, 20, 20)).read_bytes())
    blue = decode_image(write_png(tmp_path / "b.png", (20, 20, 220), stripes=True).read_bytes())
    images = clip.encode([red, blue])
    texts = clip.encode_text(["a photo of a red cat", "blue sea"])
    assert texts is not None
    assert images.vectors.shape == texts.vectors.shape == (2, clip.dim) == (2, 24)
    assert images.space == texts.space  # same space: fusion projects both the same way
    np.testing.assert_allclose(np.linalg.norm(images.vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(images.vectors[0], images.vectors[1])
    assert images.descriptors[0]["width"] == 64 and images.descriptors[0]["height"] == 48


def test_image_from_file_path_and_data_url_embed_identically(clip: ImageEncoder, tmp_path: Path) -> None:
    png = write_png(tmp_path / "g.png", (30, 200, 60))
    loader = MediaLoader(file_roots=[tmp_path])
    a = decode_image(loader.load(str(png), kind="image").data)
    b = decode_image(loader.load(data_url(png, "image/png"), kind="image").data)
    va, vb = clip.encode([a, b]).vectors
    np.testing.assert_allclose(va, vb, atol=1e-6)


def test_image_degrades_to_colour_texture_descriptor(tmp_path: Path) -> None:
    enc = ImageEncoder(model_cache_dir=tmp_path)  # no clip/ folder here
    red = decode_image(write_png(tmp_path / "r.png", (220, 20, 20)).read_bytes())
    red2 = decode_image(write_png(tmp_path / "r2.png", (200, 30, 30)).read_bytes())
    blue = decode_image(write_png(tmp_path / "b.png", (20, 20, 220), stripes=True).read_bytes())
    out = enc.encode([red, red2, blue])
    assert enc.degraded and "no CLIP model" in (enc.status().reason or "")
    assert out.vectors.shape == (3, DESCRIPTOR_DIM) and out.space.startswith("image-descriptor")
    sims = out.vectors @ out.vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3
    assert enc.encode_text(["red"]) is None


def test_undecodable_image_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="not a decodable image"):
        decode_image(b"definitely not a png", field="image_url")


# -- audio ---------------------------------------------------------------------------------------


def test_sine_wav_duration_and_loudness(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", freq=440.0, seconds=1.5, amplitude=0.5)
    wave = decode_audio(MediaLoader(file_roots=[tmp_path]).load(str(wav), kind="audio").data)
    stats, vec = audio_stats(wave)
    assert stats["duration_s"] == pytest.approx(1.5, abs=0.01)
    assert stats["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)  # −9.03 dBFS
    assert stats["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=0.2)
    assert stats["spectral_centroid_hz"] == pytest.approx(440, rel=0.1)
    assert stats["silence_ratio"] == 0.0
    quiet = audio_stats(decode_audio(write_wav(tmp_path / "q.wav", amplitude=0.005).read_bytes()))[0]
    assert quiet["rms_dbfs"] == pytest.approx(stats["rms_dbfs"] - 40, abs=0.5)
    assert vec.shape == (88,)


def test_whisper_embeddings_from_model_cache_dir(whisper: AudioEncoder, tmp_path: Path) -> None:
    low = decode_audio(write_wav(tmp_path / "l.wav", freq=220, seconds=1.0).read_bytes())
    high = decode_audio(write_wav(tmp_path / "h.wav", freq=3000, seconds=2.0).read_bytes())
    out = whisper.encode([low, high])
    assert not whisper.degraded and out.space.startswith("whisper:")
    assert out.vectors.shape == (2, 32) and np.isfinite(out.vectors).all()
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    assert out.descriptors[1]["duration_s"] == pytest.approx(2.0, abs=0.01)


def test_audio_degrades_to_log_mel_descriptor(tmp_path: Path) -> None:
    enc = AudioEncoder(model_cache_dir=tmp_path, speech_model_dir=tmp_path / "no-ct2")  # no model of either kind
    tones = [decode_audio(write_wav(tmp_path / f"{f}.wav", freq=f).read_bytes()) for f in (400, 420, 5000)]
    out = enc.encode(tones)
    assert enc.degraded and "no Whisper model" in (enc.status().reason or "")
    assert out.vectors.shape == (3, 88) and "transcript" not in out.descriptors[0]
    sims = out.vectors @ out.vectors.T
    assert sims[0, 1] > sims[0, 2]


# -- video ---------------------------------------------------------------------------------------


def test_video_frames_metadata_and_audio_track(tmp_path: Path) -> None:
    mp4 = write_mp4(tmp_path / "v.mp4", seconds=2.0, fps=10, size=(64, 48))
    clip = read_video(mp4.read_bytes(), n_frames=4)
    meta = clip.descriptors()
    assert meta["duration_s"] == pytest.approx(2.0, abs=0.15)
    assert meta["fps"] == pytest.approx(10.0)
    assert (meta["width"], meta["height"]) == (64, 48)
    assert len(clip.frames) == 4 and clip.frames[0].size == (64, 48)
    # evenly spaced: one frame from each quarter, in order, and the red ramp shows it
    assert all(q * 0.5 <= t < (q + 1) * 0.5 for q, t in enumerate(clip.timestamps)), clip.timestamps
    reds = [float(np.asarray(f)[..., 0].mean()) for f in clip.frames]
    assert reds == sorted(reds) and reds[-1] - reds[0] > 100
    assert clip.audio is not None and clip.audio.duration_s == pytest.approx(2.0, abs=0.1)
    assert audio_stats(clip.audio)[0]["spectral_centroid_hz"] == pytest.approx(330, rel=0.15)


def test_video_keyframe_sampling_and_silent_video(tmp_path: Path) -> None:
    mp4 = write_mp4(tmp_path / "s.mp4", seconds=1.0, fps=10, audio=False)
    clip = read_video(mp4.read_bytes(), n_frames=3, mode="keyframes")
    assert 1 <= len(clip.frames) <= 3 and clip.timestamps[0] == 0.0
    assert clip.audio is None
    with pytest.raises(MediaError):
        read_video(b"not a video", field="video_url")


def test_video_encoder_pools_frames_in_image_space(clip: ImageEncoder, tmp_path: Path) -> None:
    video = read_video(write_mp4(tmp_path / "v.mp4").read_bytes(), n_frames=4)
    enc = VideoEncoder(image_encoder=clip)
    out = enc.encode([video])
    frames = clip.encode(video.frames).vectors
    pooled = frames.mean(axis=0)
    np.testing.assert_allclose(out.vectors[0], pooled / np.linalg.norm(pooled), atol=1e-5)
    assert out.space == clip.space and out.descriptors[0]["n_sampled_frames"] == 4
    assert enc.status().model.startswith("frames→clip:")
