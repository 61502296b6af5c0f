"""Text: real MiniLM embeddings group by topic; statistics come from real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overdrive.content.text import HashingTextEncoder, SentenceTextEncoder
from overdrive.content.text_stats import TextAnalyzer

COOKING = [
    "Simmer the garlic and onion in butter, then whisk in the broth.",
    "This risotto recipe needs slow stirring and plenty of parmesan.",
    "Knead the dough, let it rise, and bake the bread in a hot oven.",
]
SPORTS = [
    "The striker scored a late goal and the stadium erupted.",
    "Our basketball team won the playoff game in overtime.",
    "The referee showed a red card after a rough tackle.",
]


def _mean_sim(a: np.ndarray, b: np.ndarray, same: bool) -> float:
    sims = a @ b.T
    if same:
        return float(sims[~np.eye(len(a), dtype=bool)].mean())
    return float(sims.mean())


def test_same_topic_texts_are_closer_than_cross_topic(text_encoder: SentenceTextEncoder) -> None:
    enc = text_encoder.encode(COOKING + SPORTS)
    vecs = enc.vectors
    assert vecs.shape == (6, 384) and text_encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    cook, sport = vecs[:3], vecs[3:]
    within = min(_mean_sim(cook, cook, True), _mean_sim(sport, sport, True))
    across = _mean_sim(cook, sport, False)
    assert within > across + 0.1, (within, across)
    # each text's nearest other text is from its own topic
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -1)
    assert all((sims[i].argmax() < 3) == (i < 3) for i in range(6))


def test_encoder_handles_empty_batch_and_empty_text(text_encoder: SentenceTextEncoder) -> None:
    assert text_encoder.encode([]).vectors.shape == (0, 384)
    out = text_encoder.encode(["", "hello"]).vectors
    assert out.shape == (2, 384) and np.isfinite(out).all()


def test_onnx_int8_agrees_with_sentence_transformers(text_encoder: SentenceTextEncoder, tmp_path: Path) -> None:
    """The default fast runtime stays close to the reference sentence-transformers output."""
    assert text_encoder.backend == "onnx-int8"
    reference = SentenceTextEncoder(model_cache_dir=tmp_path, backend="torch")
    texts = COOKING + SPORTS
    ref = reference.encode(texts).vectors
    fast = text_encoder.encode(texts).vectors
    cos = np.sum(ref * fast, axis=1)
    assert cos.min() > 0.97, cos
    assert reference.backend == "torch" and not reference.degraded


def test_missing_model_degrades_to_hashing(tmp_path: Path) -> None:
    enc = SentenceTextEncoder(model_dir=tmp_path / "nothing-here")
    out = enc.encode(["red apples", "red apples and pears", "quantum physics"])
    status = enc.status()
    assert enc.degraded and status.degraded and "failed to load" in (status.reason or "")
    assert out.space.startswith("text-hash") and out.vectors.shape == (3, 512)
    sims = out.vectors @ out.vectors.T
    assert sims[0, 1] > sims[0, 2]


def test_hashing_encoder_is_deterministic() -> None:
    a = HashingTextEncoder().encode(["the same words"]).vectors
    b = HashingTextEncoder().encode(["the same words"]).vectors
    np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def analyzer() -> TextAnalyzer:
    return TextAnalyzer()


def test_sentiment_from_vader(analyzer: TextAnalyzer) -> None:
    good, bad, flat = analyzer.analyze([
        "I absolutely love this, what a wonderful and happy day!",
        "This is terrible, I hate it and it made me angry.",
        "The train leaves at nine from platform two.",
    ])
    assert good["sentiment"] > 0.5 and bad["sentiment"] < -0.5 and abs(flat["sentiment"]) < 0.2


def test_language_detection(analyzer: TextAnalyzer) -> None:
    texts = [
        "The weather is lovely today and we are going to the beach.",
        "Le chat dort sur le canapé pendant que nous préparons le dîner.",
        "Der Hund spielt im Garten und die Kinder lachen laut.",
        "El perro juega en el jardín mientras los niños comen.",
    ]
    assert [s["language"] for s in analyzer.analyze(texts)] == ["en", "fr", "de", "es"]


def test_quality_statistics(analyzer: TextAnalyzer) -> None:
    clean, spam, empty = analyzer.analyze([
        "A short guide to growing tomatoes on a sunny balcony, with tips on watering.",
        "BUY NOW BUY NOW BUY NOW!!!! CLICK http://spam.example http://spam.example BUY NOW",
        "",
    ])
    assert clean["n_words"] == 14 and spam["n_words"] == 9 and clean["language"] == "en"
    assert clean["text_quality"] > 0.8 > spam["text_quality"]
    assert spam["n_urls"] == 2 and spam["uppercase_ratio"] > 0.9
    assert empty["text_quality"] == 0.0 and empty["language"] is None


def test_model_cache_dir_text_folder_replaces_the_shipped_model(tmp_path: Path) -> None:
    from overdrive.content.text import resolve_model_dir, shipped_model_dir

    shipped = shipped_model_dir()
    assert shipped is not None and (shipped / "model.safetensors").is_file()
    assert resolve_model_dir(tmp_path) == shipped  # nothing in MODEL_CACHE_DIR/text yet
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "modules.json").write_text("[]")
    assert resolve_model_dir(tmp_path) == tmp_path / "text"
