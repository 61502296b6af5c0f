"""The background pipeline: bounded submits, batching, durability, retries."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from overdrive.domain.types import Item
from overdrive.content.extractor import MultiModalFeatureExtractor
from overdrive.content.pipeline import ContentPipeline
from overdrive.content.text import HashingTextEncoder
from overdrive.content.text_stats import TextAnalyzer
from overdrive.content.types import Encoded, ContentFeatures


class SlowText(HashingTextEncoder):
    """A real encoder made slow: `delay_s` per batch, the way a big model is."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.batches: list[int] = []

    def encode(self, batch: Sequence[str]) -> Encoded:
        time.sleep(self.delay_s)
        self.batches.append(len(batch))
        return super().encode(batch)


class Sink:
    def __init__(self, fail_times: int = 0) -> None:
        self.features: list[ContentFeatures] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def __call__(self, batch: list[ContentFeatures]) -> None:
        with self.lock:
            if self.fail_times > 0:
                self.fail_times -= 1
                raise RuntimeError("store down")
            self.features.extend(batch)

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [f.item_id for f in self.features]


@pytest.fixture
def make_extractor(tmp_path: Path, text_analyzer: TextAnalyzer) -> Callable[[HashingTextEncoder], MultiModalFeatureExtractor]:
    def make(text: HashingTextEncoder) -> MultiModalFeatureExtractor:
        return MultiModalFeatureExtractor(
            model_cache_dir=tmp_path / "models", item_embedding_dim=32, text_encoder=text, text_analyzer=text_analyzer
        )

    return make


def _items(n: int, prefix: str = "i") -> list[Item]:
    return [Item(id=f"{prefix}{k}", text=f"item number {k} about topic {k % 5}") for k in range(n)]


def test_submit_never_waits_for_a_slow_encoder(tmp_path: Path, make_extractor) -> None:
    text = SlowText(delay_s=1.0)
    sink = Sink()
    pipe = ContentPipeline(extractor=make_extractor(text), sink=sink,
                           journal_path=tmp_path / "journal.sqlite", batch_size=16, linger_s=0.02)
    pipe.start()
    try:
        worst = 0.0
        for chunk in range(6):
            start = time.perf_counter()
            receipt = pipe.submit(_items(10, prefix=f"c{chunk}-"))
            worst = max(worst, time.perf_counter() - start)
            assert receipt.queued + receipt.deferred == 10
        assert worst < 0.5, worst  # bounded by the journal insert, not by 1 s batches
        assert pipe.wait_idle(timeout=30)
        assert sorted(sink.ids) == sorted(f"c{c}-{k}" for c in range(6) for k in range(10))
        assert max(text.batches) <= 16 and len(text.batches) < 60  # batched, not one by one
        assert pipe.stats()["processed"] == 60 and pipe.backlog() == 0
    finally:
        pipe.close()


def test_journal_survives_a_restart(tmp_path: Path, make_extractor) -> None:
    journal = tmp_path / "journal.sqlite"
    first = ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=Sink(), journal_path=journal)
    first.submit(_items(5))  # never started: as if the process died before encoding
    first.close()
    sink = Sink()
    second = ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=sink, journal_path=journal)
    assert second.backlog() == 5
    second.start()
    try:
        assert second.wait_idle(timeout=30)
        assert sorted(sink.ids) == [f"i{k}" for k in range(5)]
    finally:
        second.close()


def test_resubmitted_pending_item_is_encoded_once_with_latest_content(tmp_path: Path, make_extractor) -> None:
    sink = Sink()
    pipe = ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=sink)
    pipe.submit([Item(id="x", text="old"), Item(id="y", text="y")])
    pipe.submit([Item(id="x", text="new")])
    assert pipe.backlog() == 2
    pipe.start()
    try:
        assert pipe.wait_idle(timeout=30)
        assert sorted(sink.ids) == ["x", "y"]
        ref = make_extractor(HashingTextEncoder()).extract([Item(id="x", text="new")])[0]
        got = next(f for f in sink.features if f.item_id == "x")
        assert got.content_hash == ref.content_hash
    finally:
        pipe.close()


def test_busy_journal_defers_instead_of_blocking(tmp_path: Path, make_extractor) -> None:
    journal = tmp_path / "journal.sqlite"
    sink = Sink()
    pipe = ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=sink,
                           journal_path=journal, submit_timeout_s=0.1)
    blocker = sqlite3.connect(journal, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    try:
        start = time.perf_counter()
        receipt = pipe.submit(_items(3))
        assert time.perf_counter() - start < 0.5
        assert (receipt.queued, receipt.deferred) == (0, 3)
        assert pipe.backlog() == 3  # held in memory, counted, not lost
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    pipe.start()
    try:
        assert pipe.wait_idle(timeout=30)
        assert sorted(sink.ids) == ["i0", "i1", "i2"]
    finally:
        pipe.close()


def test_failing_sink_is_retried_then_parked(tmp_path: Path, make_extractor) -> None:
    sink = Sink(fail_times=1)
    pipe = ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=sink, retry_backoff_s=0.05)
    pipe.submit(_items(3))
    pipe.start()
    try:
        assert pipe.wait_idle(timeout=30)
        assert sorted(sink.ids) == ["i0", "i1", "i2"]  # the retry delivered them
        assert pipe.stats()["batch_failures"] == 1
    finally:
        pipe.close()

    always = Sink(fail_times=10**6)
    pipe = ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=always,
                           retry_backoff_s=0.01, max_attempts=2)
    pipe.submit(_items(2))
    pipe.start()
    try:
        assert pipe.wait_idle(timeout=30)  # parked items do not count as waiting
        stats = pipe.stats()
        assert stats["failed"] == 2 and stats["backlog"] == 0 and "store down" in stats["last_error"]
        always.fail_times = 0
        assert pipe.retry_failed() == 2
        assert pipe.wait_idle(timeout=30)
        assert sorted(always.ids) == ["i0", "i1"]
    finally:
        pipe.close()


def test_rejects_bad_configuration(tmp_path: Path, make_extractor) -> None:
    with pytest.raises(ValueError):
        ContentPipeline(extractor=make_extractor(HashingTextEncoder()), sink=Sink(), batch_size=0)
