"""The background pipeline: bounded submits, batching, durability, retries.

Nothing here is timed: that a submit does not wait on the encoder or on a busy journal shows in
what it returns while the encoder or the journal is held (how fast it returns is measured by
benchmarks/bench_pipeline.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from overdrive.domain.types import Item
from overdrive.content.extractor import MultiModalFeatureExtractor
from overdrive.content.pipeline import ContentPipeline
from overdrive.content.text import HashingTextEncoder
from overdrive.content.text_stats import TextAnalyzer
from overdrive.content.types import Encoded, ContentFeatures


class GatedText(HashingTextEncoder):
    """A real encoder made as slow as the test wants: each batch waits inside `encode` until the
    gate opens (the way a big model holds a batch), and is then encoded and counted."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()  # a batch is inside the encoder
        self.gate = threading.Event()
        self.batches: list[int] = []

    def encode(self, batch: Sequence[str]) -> Encoded:
        self.entered.set()
        self.gate.wait(timeout=60)  # a safety net: a test that never opens it fails, it does not hang
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


def _distinct(n: int, chunk: int) -> list[Item]:
    """Items whose texts differ across chunks too (the extractor encodes equal content once)."""
    return [Item(id=f"c{chunk}-{k}", text=f"chunk {chunk} item {k}") for k in range(n)]


def test_submit_never_waits_for_a_slow_encoder(tmp_path: Path, make_extractor) -> None:
    text = GatedText()
    sink = Sink()
    pipe = ContentPipeline(extractor=make_extractor(text), sink=sink,
                           journal_path=tmp_path / "journal.sqlite", batch_size=16, linger_s=0.02)
    pipe.start()
    try:
        first = pipe.submit(_distinct(10, chunk=0))
        assert first.queued + first.deferred == 10
        assert text.entered.wait(timeout=30)  # the worker holds that batch inside the encoder
        for chunk in range(1, 6):
            receipt = pipe.submit(_distinct(10, chunk=chunk))
            assert (receipt.queued, receipt.deferred) == (10, 0)  # journaled now, not held back by the encoder
        assert text.batches == []  # every submit returned while the first batch was still being encoded
        text.gate.set()
        assert pipe.wait_idle(timeout=30)
        assert sorted(sink.ids) == sorted(f"c{c}-{k}" for c in range(6) for k in range(10))
        # Batched, not one by one: the first submit's 10, then the 50 that queued behind it.
        assert text.batches == [10, 16, 16, 16, 2]
        assert pipe.stats()["processed"] == 60 and pipe.backlog() == 0
    finally:
        text.gate.set()  # (a failed assertion above must not leave the worker inside the encoder)
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
        receipt = pipe.submit(_items(3))  # returns while the other writer still holds the file
        assert (receipt.queued, receipt.deferred) == (0, 3)  # deferred: it gave up the lock, not the items
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
