"""Content benchmark: text encoding throughput, extraction + pipeline ingest, vector index.

Measured in one run, each against a baseline measured in the same run:
- text encoding, short items (one sentence of 5–11 words, like a caption or title) and full
  synthetic-world item texts (2–4 sentences + tags), batched (64): the default runtime
  (ONNX Runtime int8) against sentence-transformers on PyTorch, against batch size 1, and against
  the model-free hashing descriptor the service degrades to;
- the extractor on world items (text encoding + sentiment/language/quality + fusion), then the
  same items again (content-hash cache: should cost a lookup);
- the background pipeline ingesting `--ingest` text items: submit latency and time until the
  last item's features reached the sink (the target: 10,000 within a minute);
- the vector index: build time, search p50/p95 for k=10 and recall@10 against exact numpy
  search (the baseline), at `--index-size` vectors of 128 dimensions.

    python -m benchmarks.bench_content [--short 2000 --ingest 10000 --ingest-text world|short
                                        --index-size 50000 --skip-torch --json]

Machine noise matters on shared 2-core boxes: compare figures from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from overdrive.domain.types import Item  # noqa: E402
from overdrive.data.synthetic import WorldConfig, generate_world  # noqa: E402
from overdrive.content.cache import ContentCache  # noqa: E402
from overdrive.content.extractor import MultiModalFeatureExtractor, text_input  # noqa: E402
from overdrive.content.pipeline import ContentPipeline  # noqa: E402
from overdrive.content.text import HashingTextEncoder, SentenceTextEncoder  # noqa: E402
from overdrive.index import UsearchIndex  # noqa: E402


def _rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return round(n / (time.perf_counter() - t0), 1)


def bench_text(args: argparse.Namespace, cache_dir: Path, short: list[str], full: list[str]) -> dict:
    out: dict = {"short_items": len(short), "world_items": len(full),
                 "avg_words_short": round(float(np.mean([len(t.split()) for t in short])), 1),
                 "avg_words_world": round(float(np.mean([len(t.split()) for t in full])), 1)}
    default = SentenceTextEncoder(model_cache_dir=cache_dir, batch_size=64)
    t0 = time.perf_counter()
    default.load()
    out["default_backend"] = default.backend
    out["load_s"] = round(time.perf_counter() - t0, 2)
    default.encode(short[:64])  # warm-up
    out["default_short_per_s"] = _rate(len(short), lambda: default.encode(short))
    out["default_world_per_s"] = _rate(len(full), lambda: default.encode(full))
    one = SentenceTextEncoder(model_cache_dir=cache_dir, batch_size=1)
    sample = short[: max(100, len(short) // 10)]
    out["baseline_batch1_short_per_s"] = _rate(len(sample), lambda: one.encode(sample))
    hashing = HashingTextEncoder()
    out["baseline_hashing_short_per_s"] = _rate(len(short), lambda: hashing.encode(short))
    if not args.skip_torch:
        torch_enc = SentenceTextEncoder(model_cache_dir=cache_dir, backend="torch", batch_size=64)
        torch_enc.load()
        torch_enc.encode(short[:64])
        out["baseline_torch_short_per_s"] = _rate(len(short), lambda: torch_enc.encode(short))
        out["baseline_torch_world_per_s"] = _rate(len(full), lambda: torch_enc.encode(full))
        a, b = default.encode(full[:200]).vectors, torch_enc.encode(full[:200]).vectors
        out["default_vs_torch_mean_cosine"] = round(float(np.mean(np.sum(a * b, axis=1))), 4)
    return out


def bench_extract(cache_dir: Path, items: list[Item], tmp: Path) -> dict:
    ex = MultiModalFeatureExtractor(model_cache_dir=cache_dir, item_embedding_dim=128,
                                    cache=ContentCache(path=tmp / "features.sqlite"))
    ex.load()
    ex.extract(items[:32])
    fresh = items[32:]
    out = {"extract_world_per_s": _rate(len(fresh), lambda: ex.extract(fresh))}
    out["reextract_cached_per_s"] = _rate(len(fresh), lambda: ex.extract(fresh))
    out["degraded"] = ex.health()["degraded"]
    return out


def bench_ingest(cache_dir: Path, items: list[Item], tmp: Path) -> dict:
    ex = MultiModalFeatureExtractor(model_cache_dir=cache_dir, item_embedding_dim=128,
                                    cache=ContentCache(path=tmp / "ingest-cache.sqlite"))
    delivered = []
    done_at: list[float] = []

    def sink(batch) -> None:
        delivered.extend(f.item_id for f in batch)
        if len(delivered) >= len(items):
            done_at.append(time.perf_counter())

    pipe = ContentPipeline(extractor=ex, sink=sink, journal_path=tmp / "journal.sqlite", batch_size=128)
    pipe.start()
    ex.load()
    submit_ms = []
    t0 = time.perf_counter()
    for start in range(0, len(items), 500):  # the way /items/batch would hand them over
        s0 = time.perf_counter()
        pipe.submit(items[start : start + 500])
        submit_ms.append((time.perf_counter() - s0) * 1000)
    pipe.wait_idle(timeout=600)
    end = done_at[0] if done_at else time.perf_counter()
    pipe.close()
    return {
        "ingest_items": len(items),
        "ingest_total_s": round(end - t0, 2),
        "ingest_per_s": round(len(items) / (end - t0), 1),
        "submit_500_p50_ms": round(float(np.percentile(submit_ms, 50)), 2),
        "submit_500_max_ms": round(float(np.max(submit_ms)), 2),
        "delivered": len(set(delivered)),
    }


def bench_index(n: int, dim: int = 128, queries: int = 500) -> dict:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    mat = centres[rng.integers(64, size=n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    ids = [f"i{k}" for k in range(n)]
    index = UsearchIndex(dim=dim)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):  # incremental, as ingest delivers it
        index.upsert(ids[start : start + 1000], mat[start : start + 1000])
    build_s = time.perf_counter() - t0
    qs = mat[rng.integers(n, size=queries)] + 0.1 * rng.standard_normal((queries, dim)).astype(np.float32)
    ann_ms, exact_ms, recall = [], [], []
    for q in qs:
        t = time.perf_counter()
        got = {i for i, _ in index.search(q, 10)}
        ann_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        top = np.argpartition(-(mat @ q), 10)[:10]
        exact_ms.append((time.perf_counter() - t) * 1000)
        recall.append(len(got & {ids[j] for j in top}) / 10)
    with tempfile.TemporaryDirectory() as tmp:
        persisted = UsearchIndex(dim=dim, path=Path(tmp) / "ix")
        persisted.upsert(ids, mat)
        t = time.perf_counter()
        persisted.save()
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        UsearchIndex(dim=dim, path=Path(tmp) / "ix")
        load_s = time.perf_counter() - t
    return {
        "index_size": n,
        "build_per_s": round(n / build_s),
        "search_p50_ms": round(float(np.percentile(ann_ms, 50)), 3),
        "search_p95_ms": round(float(np.percentile(ann_ms, 95)), 3),
        "baseline_exact_numpy_p50_ms": round(float(np.percentile(exact_ms, 50)), 3),
        "recall_at_10": round(float(np.mean(recall)), 4),
        "save_s": round(save_s, 3),
        "load_s": round(load_s, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", type=int, default=2000, help="short items to encode")
    p.add_argument("--ingest", type=int, default=10_000, help="text items through the pipeline")
    p.add_argument("--ingest-text", choices=("world", "short"), default="world",
                   help="ingest full world texts (2–4 sentences + tags) or their first sentence only")
    p.add_argument("--index-size", type=int, default=50_000)
    p.add_argument("--skip-torch", action="store_true", help="skip the sentence-transformers/PyTorch baseline")
    p.add_argument("--model-cache-dir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    world = generate_world(WorldConfig(n_users=50, n_items=max(args.ingest, args.short, 1000), n_topics=12, seed=1, end=1.7e9))
    items = [Item(id=d["id"], type="text", text=d["text"], author_id=d["author_id"],
                  created_at=d["created_at"], tags=tuple(d["tags"])) for d in world.items]
    short = [d["text"].split(". ")[0] for d in world.items[: args.short]]
    full = [text_input(it) for it in items[:1000]]
    results: dict = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache_dir = args.model_cache_dir or tmp / "models"
        results["text"] = bench_text(args, cache_dir, short, full)
        results["extract"] = bench_extract(cache_dir, items[:1000], tmp)
        to_ingest = items[: args.ingest]
        if args.ingest_text == "short":
            to_ingest = [Item(id=it.id, type="text", text=(it.text or "").split(". ")[0]) for it in to_ingest]
        results["ingest"] = bench_ingest(cache_dir, to_ingest, tmp)
        results["ingest"]["ingest_text"] = args.ingest_text
    results["index"] = bench_index(args.index_size)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for section, values in results.items():
        if isinstance(values, dict):
            print(f"[{section}]")
            for key, value in values.items():
                print(f"  {key:32s} {value}")
        else:
            print(f"{section}: {values}")


if __name__ == "__main__":
    main()
