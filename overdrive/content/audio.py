"""Audio: decoding (PyAV), signal statistics, and Whisper-encoder embeddings with a fallback.

Whisper: ``MODEL_CACHE_DIR/whisper`` holds a transformers Whisper folder (`WhisperModel` weights
and config plus `preprocessor_config.json` for `WhisperFeatureExtractor`), written with
``save_pretrained``. Only the encoder runs. Whisper always sees 30-second windows; the
embedding is the mean of the encoder states over the frames that cover real audio (50 per
second), so padding never dilutes a short clip. At most `max_windows` windows are read.

Degraded mode (no Whisper folder, or it fails to load): an 88-dimensional descriptor — mean and
standard deviation of 40 log-mel band energies (25 ms windows, 10 ms hop, numpy FFT; the
MFCC front end without the DCT) plus 8 spectral statistics — centred per vector. It tells music
from speech from noise, nothing about words.

Statistics for every clip, either mode: duration, RMS and peak level (dBFS), spectral centroid,
roll-off (85 %), flatness, zero-crossing rate and silence ratio.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overdrive.content._util import FolderModelEncoder, folder_fingerprint
from overdrive.content._util import l2_normalise as _normalise
from overdrive.content.media import MediaError
from overdrive.content.types import Encoded

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
DESCRIPTOR_DIM = 88
_N_MELS = 40


@dataclass(frozen=True, slots=True)
class Waveform:
    """Mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate if self.sample_rate else 0.0


def decode_audio(source: bytes | Any, *, field: str | None = None, max_seconds: float = 600.0) -> Waveform:
    """First audio stream of `source` (bytes or an open PyAV container) → 16 kHz mono."""
    import av

    try:
        container = av.open(io.BytesIO(source)) if isinstance(source, (bytes, bytearray)) else source
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaError(f"not a decodable audio file: {exc}", field=field) from exc
    try:
        if not container.streams.audio:
            raise MediaError("no audio stream", field=field)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        limit = int(max_seconds * SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += chunk.size
            if total >= limit:
                break
        else:
            for out in resampler.resample(None):  # flush
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise MediaError(f"audio decoding failed: {exc}", field=field) from exc
    finally:
        if isinstance(source, (bytes, bytearray)):
            container.close()
    samples = np.concatenate(chunks).astype(np.float32)[:limit] if chunks else np.zeros(0, np.float32)
    return Waveform(np.clip(samples, -1.0, 1.0), SAMPLE_RATE)


def _mel_filterbank(n_fft: int, sr: int, n_mels: int) -> np.ndarray:
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(sr / 2)), n_mels + 2)
    bins = np.floor((n_fft + 1) * (700.0 * (10 ** (mels / 2595.0) - 1)) / sr).astype(int)
    bank = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for m in range(1, n_mels + 1):
        lo, mid, hi = bins[m - 1], bins[m], bins[m + 1]
        if mid > lo:
            bank[m - 1, lo:mid] = (np.arange(lo, mid) - lo) / (mid - lo)
        if hi > mid:
            bank[m - 1, mid:hi] = (hi - np.arange(mid, hi)) / (hi - mid)
    return bank


def audio_stats(wave: Waveform) -> tuple[dict[str, float], np.ndarray]:
    """Scalar statistics and the degraded-mode descriptor vector of one clip."""
    x, sr = wave.samples, wave.sample_rate
    duration = wave.duration_s
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    win, hop = int(0.025 * sr), int(0.010 * sr)
    n_fft = 512
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    n_frames = 1 + (x.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = x[idx] * np.hanning(win).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2  # (frames, bins)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    energy = power.sum(axis=1)
    weights = energy / max(float(energy.sum()), 1e-12)
    centroid = (power @ freqs) / np.maximum(energy, 1e-12)
    cum = np.cumsum(power, axis=1)
    rolloff = freqs[np.minimum((cum < 0.85 * cum[:, -1:]).sum(axis=1), freqs.size - 1)]
    flatness = np.exp(np.mean(np.log(power + 1e-12), axis=1)) / (np.mean(power, axis=1) + 1e-12)
    frame_rms = np.sqrt(np.mean(frames**2, axis=1))
    zcr = float(np.mean(np.abs(np.diff(np.signbit(wave.samples).astype(np.int8))))) if wave.samples.size > 1 else 0.0
    stats = {
        "duration_s": round(duration, 4),
        "rms_dbfs": round(20 * math.log10(max(rms, 1e-10)), 3),
        "peak_dbfs": round(20 * math.log10(max(peak, 1e-10)), 3),
        "spectral_centroid_hz": round(float(weights @ centroid), 2),
        "spectral_rolloff_hz": round(float(weights @ rolloff), 2),
        "spectral_flatness": round(float(weights @ flatness), 5),
        "zero_crossing_rate": round(zcr, 5),
        "silence_ratio": round(float(np.mean(frame_rms < 10 ** (-50 / 20))), 4),
    }
    log_mel = np.log(power @ _mel_filterbank(n_fft, sr, _N_MELS).T + 1e-10)  # (frames, mels)
    glob = np.array([
        stats["rms_dbfs"] / 60, stats["peak_dbfs"] / 60, stats["spectral_centroid_hz"] / (sr / 2),
        stats["spectral_rolloff_hz"] / (sr / 2), stats["spectral_flatness"], stats["zero_crossing_rate"],
        stats["silence_ratio"], math.log1p(duration) / 5,
    ], dtype=np.float32)
    mean, std = log_mel.mean(axis=0), log_mel.std(axis=0)
    vec = np.concatenate([(mean - mean.mean()) / 10, std / 10, glob - 0.25]).astype(np.float32)
    return stats, vec


class AudioEncoder(FolderModelEncoder):
    """Whisper-encoder embeddings of 16 kHz waveforms, degrading to log-mel statistics."""

    modality = "audio"
    model_kind, folder, spaces = "Whisper", "whisper", ("whisper", "audio-descriptor")
    fallback_name, fallback_dim = "log-mel-v1", DESCRIPTOR_DIM

    def __init__(self, *, model_cache_dir: Path | None = None, model_dir: Path | None = None, max_windows: int = 2) -> None:
        super().__init__(model_cache_dir=model_cache_dir, model_dir=model_dir)
        self._max_windows = max(1, max_windows)
        self._features: Any = None

    def encode(self, batch: Sequence[Waveform]) -> Encoded:
        self.load()
        stats, vecs = zip(*(audio_stats(w) for w in batch)) if batch else ((), ())
        if self._model is None:
            out = np.stack(vecs) if vecs else np.zeros((0, self._dim), np.float32)
            return Encoded(_normalise(out), self.space, list(stats))
        out = np.stack([self._embed(w) for w in batch]) if batch else np.zeros((0, self._dim), np.float32)
        return Encoded(_normalise(out), self.space, list(stats))

    def _embed(self, wave: Waveform) -> np.ndarray:
        import torch

        window = 30 * SAMPLE_RATE
        n = max(1, min(self._max_windows, math.ceil(wave.samples.size / window)))
        pieces = [wave.samples[i * window : (i + 1) * window] for i in range(n)]
        pieces = [p if p.size else np.zeros(SAMPLE_RATE // 10, np.float32) for p in pieces]
        feats = self._features(pieces, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(feats["input_features"]).last_hidden_state.numpy()  # (n, T, d)
        per_s = hidden.shape[1] / 30.0
        total, weight = np.zeros(hidden.shape[2], np.float64), 0.0
        for i, piece in enumerate(pieces):
            valid = max(1, min(hidden.shape[1], math.ceil(piece.size / SAMPLE_RATE * per_s)))
            total += hidden[i, :valid].mean(axis=0) * piece.size
            weight += piece.size
        return (total / max(weight, 1.0)).astype(np.float32)

    def _unload(self) -> None:
        self._features = None

    def _load_model(self, folder: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import WhisperFeatureExtractor, WhisperModel

        self._features = WhisperFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
        model = WhisperModel.from_pretrained(str(folder), local_files_only=True).eval()
        self._model = model.get_encoder()
        self._dim = int(model.config.d_model)
        self._name = f"{folder.name}-{folder_fingerprint(folder)}"

