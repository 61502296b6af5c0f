"""Content pipeline submit latency: what a caller (an item write) waits for `ContentPipeline.submit`.

The unit tests prove that a submit never waits on the encoder and defers instead of waiting on a
busy journal (tests/unit/content/test_pipeline.py, no stopwatch there); this prints how long a
submit takes. Measured in one run, each against the baseline measured in the same run:
- baseline: the journal insert alone (the worker not started, nothing competing);
- encoder fast: the worker encoding with the model-free encoder while submits come (it competes
  for the journal lock and the GIL between batches);
- encoder busy: every batch takes `--encoder-delay` seconds in the encoder, the way a big model
  does, while submits keep coming (the old unit test's bound: worst submit under 0.5 s);
- journal busy: another writer holds the journal file; each submit gives up after
  `submit_timeout_s` and holds its items in memory (`deferred`).

    python -m benchmarks.bench_pipeline [--submits 200 --items 10 --encoder-delay 1.0 --json]

Figures from a shared 2-core host drift; compare only figures from one run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from overdrive.content.extractor import MultiModalFeatureExtractor
from overdrive.content.pipeline import ContentPipeline
from overdrive.content.text import HashingTextEncoder
from overdrive.content.types import Encoded
from overdrive.domain.types import Item

ENCODER_BUSY_BOUND_S = 0.5  # what the unit test used to assert on the worst submit


class _SlowText(HashingTextEncoder):
    """The model-free encoder, made to take `delay_s` a batch."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def encode(self, batch: Sequence[str]) -> Encoded:
        time.sleep(self.delay_s)
        return super().encode(batch)


def _items(n: int, start: int) -> list[Item]:
    return [Item(id=f"b{k}", text=f"item number {k} about topic {k % 7}") for k in range(start, start + n)]


def _submit_ms(pipe: ContentPipeline, submits: int, items: int) -> tuple[list[float], int]:
    """Milliseconds of each submit of `items` items, and how many items were deferred in all."""
    out, deferred = [], 0
    for s in range(submits):
        batch = _items(items, s * items)
        t0 = time.perf_counter()
        receipt = pipe.submit(batch)
        out.append((time.perf_counter() - t0) * 1000.0)
        deferred += receipt.deferred
    return out, deferred


def _summary(ms: list[float], deferred: int) -> dict:
    p50, p99 = np.percentile(np.asarray(ms), [50, 99])
    return {"submits": len(ms), "p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(max(ms)), 3), "deferred_items": deferred}


def _pipeline(tmp: Path, name: str, text: HashingTextEncoder, **kw) -> ContentPipeline:
    extractor = MultiModalFeatureExtractor(model_cache_dir=tmp / "models", item_embedding_dim=32, text_encoder=text)
    extractor.load()  # before the worker starts: loading is not what is measured
    return ContentPipeline(extractor=extractor, sink=lambda batch: None, journal_path=tmp / f"{name}.sqlite",
                           batch_size=16, linger_s=0.02, **kw)


def run(args: argparse.Namespace) -> dict:
    results: dict = {"items_per_submit": args.items}
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-pipeline-") as folder:
        tmp = Path(folder)
        pipe = _pipeline(tmp, "baseline", HashingTextEncoder())  # never started
        try:
            _submit_ms(pipe, 20, args.items)  # warm-up
            results["baseline"] = _summary(*_submit_ms(pipe, args.submits, args.items))
        finally:
            pipe.close()

        pipe = _pipeline(tmp, "encoder-fast", HashingTextEncoder())
        pipe.start()
        try:
            results["encoder_fast"] = _summary(*_submit_ms(pipe, args.submits, args.items))
        finally:
            pipe.close()

        pipe = _pipeline(tmp, "encoder-busy", _SlowText(args.encoder_delay))
        pipe.start()
        try:
            results["encoder_busy"] = _summary(*_submit_ms(pipe, args.submits, args.items))
            results["encoder_busy"]["encoder_delay_s"] = args.encoder_delay
        finally:
            pipe.close()  # (stops after the batch in hand; the rest stays journaled)

        timeout_s = args.submit_timeout
        pipe = _pipeline(tmp, "journal-busy", HashingTextEncoder(), submit_timeout_s=timeout_s)
        blocker = sqlite3.connect(tmp / "journal-busy.sqlite", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
        try:
            n = max(1, min(args.submits, 10))  # each of these waits out the timeout
            results["journal_busy"] = _summary(*_submit_ms(pipe, n, args.items))
            results["journal_busy"]["submit_timeout_s"] = timeout_s
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            pipe.close()
    base = results["baseline"]["p50_ms"] or 1e-9
    for name in ("encoder_fast", "encoder_busy"):
        results[f"{name}_p50_vs_baseline"] = round(results[name]["p50_ms"] / base, 2)
    results["checks"] = {
        f"encoder busy: worst submit < {ENCODER_BUSY_BOUND_S:g} s": results["encoder_busy"]["max_ms"] < ENCODER_BUSY_BOUND_S * 1000,
        "encoder busy: nothing deferred (the encoder holds no journal lock)": results["encoder_busy"]["deferred_items"] == 0,
        "journal busy: worst submit < submit_timeout_s + 0.25 s": results["journal_busy"]["max_ms"] < (timeout_s + 0.25) * 1000,
        "journal busy: every item deferred": results["journal_busy"]["deferred_items"] == results["journal_busy"]["submits"] * args.items,
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=200)
    parser.add_argument("--items", type=int, default=10, help="items per submit")
    parser.add_argument("--encoder-delay", type=float, default=1.0, help="seconds the busy encoder takes a batch")
    parser.add_argument("--submit-timeout", type=float, default=0.1, help="submit_timeout_s of the journal-busy run")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    results = run(args)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"ContentPipeline.submit of {args.items} items")
    print(f"{'run':<14}{'submits':>8}{'P50 ms':>10}{'P99 ms':>10}{'max ms':>10}{'deferred':>10}")
    for name in ("baseline", "encoder_fast", "encoder_busy", "journal_busy"):
        r = results[name]
        print(f"{name:<14}{r['submits']:>8}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['max_ms']:>10.3f}{r['deferred_items']:>10}")
    print(f"P50 against the baseline: encoder fast {results['encoder_fast_p50_vs_baseline']:.2f}, "
          f"encoder busy ({args.encoder_delay:g} s a batch) {results['encoder_busy_p50_vs_baseline']:.2f}")
    for what, ok in results["checks"].items():
        print(f"  {'PASS' if ok else 'MISS'}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
