"""`python -m overdrive.services.enhanced_ranking_service --benchmark`: the ranker over real HTTP.

Starts the real service (embedded default, or on Redis with `--redis`) on a synthetic world —
catalog, signal history, a trained collaborative model and indexed content features — and drives
`POST /rank/for-you/enhanced` with `--candidates` catalog ids and `--limit` from `--connections`
keep-alive connections. Then, on the same server stack (`overdrive.app.serve`: one uvicorn process,
asyncio's loop, httptools), a bare ASGI endpoint that parses the same payload with orjson and returns
`limit` ids, and the framework reference: the service's own FastAPI stack (its middleware and
the rank route's request model) answering the first `limit` ids without ranking — the most any
ranker served by this stack could reach. Each endpoint gets two runs: saturation (closed loop:
every connection sends again as soon as it has an answer, which gives the most requests per
second — and by Little's law a latency of connections ÷ throughput) and paced at `--rate`
requests per second (the spec's 10,000 recommendations/s by default), which gives the latency a
client sees at that load; the ranker also gets a run paced at half its own saturation rate: the
latency at a load it can carry. Where the CPU went during each saturation run is printed too.

With `--redis URL --replicas N`, N API replicas share the one Redis (scaled mode), each its own
process, port and data folder, the later ones loading the collaborative model the first trained and
indexing content from the shared catalog; the load's connections are spread over them in turn, and
each reference endpoint runs as N processes too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import orjson
from fastapi import FastAPI, Response

from overdrive.observability.performance import PerformanceMonitor
from overdrive.api.app_factory import add_middleware
from overdrive.api.errors import install_error_handlers
from overdrive.api.schemas import RankRequest
from overdrive.config import Settings
from benchmarks.cpu_use import cpu_meter
from benchmarks.load import LoadResult, post_request, run_load
from overdrive.evaluation.replay import ReplayOptions, train_models, wait_for_content
from overdrive.evaluation.server_process import ServerProcess, free_port
from overdrive_client import Client

RANK_PATH = "/rank/for-you/enhanced"
SPEC_RECS_PER_S = 10_000
SPEC_P95_MS = 50.0


async def bare_app(scope: dict, receive, send) -> None:  # noqa: ANN001 - the ASGI signature
    """The comparison endpoint: parse the rank payload, answer the first `limit` candidate ids."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = orjson.loads(body)
    ids = [c["id"] for c in payload["candidate_items"][: payload.get("limit", 20)]]
    out = orjson.dumps({"user_id": payload["user_id"], "items": [{"id": i} for i in ids]})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


def framework_app() -> FastAPI:
    """The framework reference: the rank route's request model validated, behind the service's
    middleware, answering the first `limit` candidate ids — everything but the ranking."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post(RANK_PATH)
    async def first_ids(body: RankRequest) -> Response:
        ids = [c["id"] for c in (body.candidate_items or [])[: body.limit]]
        return Response(orjson.dumps({"user_id": body.user_id, "items": [{"id": i} for i in ids]}),
                        media_type="application/json")

    add_middleware(app, settings=Settings.load(), monitor=PerformanceMonitor())
    return app


REFERENCES = {"bare": lambda: bare_app, "framework": framework_app}  # name -> the ASGI app to serve


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m overdrive.services.enhanced_ranking_service",
                                description="Load-test the ranker over HTTP against a bare ASGI endpoint.")
    p.add_argument("--benchmark", action="store_true", help="run the benchmark (the only mode)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--candidates", type=int, default=100, help="catalog candidates per request")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--duration", type=float, default=15.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring, per run")
    p.add_argument("--rate", type=float, default=None,
                   help="paced requests/s (default: the spec's 10,000 recommendations/s ÷ limit)")
    p.add_argument("--items", type=int, default=2000, help="catalog size of the synthetic world")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--signals-per-user", type=float, default=50.0)
    p.add_argument("--no-content", action="store_true", help="without content features (no text model)")
    p.add_argument("--redis", metavar="URL", help="run the service on this Redis (scaled mode)")
    p.add_argument("--replicas", type=int, default=1,
                   help="API replicas sharing the Redis (needs --redis), and as many processes per reference endpoint")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--serve", nargs=2, metavar=("REFERENCE", "PORT"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also when piped
    if args.serve:
        from overdrive.app import serve

        serve(REFERENCES[args.serve[0]](), host="127.0.0.1", port=int(args.serve[1]), log_level="warning")
        return 0
    if not args.benchmark:
        parser().error("pass --benchmark")
    if args.replicas < 1 or (args.replicas > 1 and not args.redis):
        parser().error("--replicas N: N >= 1, and more than one needs --redis (the embedded default keeps its live state in one process)")
    if args.connections < args.replicas:
        parser().error("--connections must be at least --replicas (each replica gets its share)")
    rate = args.rate or SPEC_RECS_PER_S / args.limit
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-") as tmp:
        (rank, cpu), bodies = _rank_runs(Path(tmp), args, rate)  # the service is stopped before the references run
        runs, cpus = {"rank": rank}, {"rank": cpu}
        for name in REFERENCES:
            runs[name], cpus[name] = _reference_runs(name, bodies, args, rate)
    report = _report(runs, cpus, args, rate)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _rank_runs(tmp: Path, args: argparse.Namespace, rate: float) -> tuple[tuple[dict[str, LoadResult], dict[str, float]], list[bytes]]:
    prefix = f"overdrive-bench-{uuid.uuid4().hex[:8]}:"
    with ExitStack() as running:  # on the way out: replicas stopped, then the Redis keys deleted
        if args.redis:
            running.callback(delete_prefix, args.redis, prefix)
        server, ids, users = start_service(tmp, args, prefix)
        running.callback(server.stop)
        replicas = start_replicas(tmp, args, prefix, len(ids), running)
        ports = [server.port, *(r.port for r in replicas)]
        bodies = rank_bodies(ids, users, args.candidates, args.limit)
        requests = [post_request("127.0.0.1", server.port, RANK_PATH, b) for b in bodies]
        print(f"ranking: {len(requests)} distinct requests, {args.candidates} candidates, limit {args.limit}, "
              f"{len(ports)} replica(s)")
        rank, cpu = _runs(ports, requests, args, rate, {f"replica {n}": s.proc.pid for n, s in enumerate([server, *replicas], 1)})
        # and the latency it gives at a load it can carry: half its own saturation rate
        rank["paced 50%"] = _checked("paced 50%", run_load(
            "127.0.0.1", ports, requests, connections=args.connections, duration_s=args.duration,
            warmup_s=args.warmup, rate=0.5 * rank["saturation"].rps))
        return (rank, cpu), bodies


def start_service(tmp: Path, args: argparse.Namespace, prefix: str) -> tuple[ServerProcess, list[str], list[str]]:
    from overdrive.ingest.direct import ingest_directly
    from overdrive.ingest.http import post_world
    from overdrive.data.synthetic import WorldConfig, generate_world

    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items,
                                       signals_per_user=args.signals_per_user, seed=1))
    print(f"world: {len(world.items)} items, {len(world.signals)} signals, {len(world.user_ids)} users")
    env = service_env(tmp, args, prefix)
    if not args.redis:
        ingest_directly(tmp / "data", world.items, world.signals)
    server = ServerProcess(data_dir=tmp / "data", env=env, log_path=tmp / "server.log").start(timeout_s=300)
    try:
        with Client(server.url, timeout=60.0) as client:  # setup only: the load itself is benchmarks/load.py
            if args.redis:
                post_world(client, world.items, world.signals)
            started = time.perf_counter()
            options = ReplayOptions()
            jobs = train_models(client, options)
            if any(": failed" in job for job in jobs):
                raise RuntimeError(f"training failed: {jobs}")
            if not args.no_content:
                wait_for_content(client, len(world.items), options)
            print(f"ready: model trained and content indexed in {time.perf_counter() - started:.1f} s")
    except BaseException:
        server.stop()
        raise
    return server, [i["id"] for i in world.items], world.user_ids


def start_replicas(tmp: Path, args: argparse.Namespace, prefix: str, n_items: int, stack: ExitStack) -> list[ServerProcess]:
    """Replicas 2..N of a Redis-mode service whose first replica holds the world: each its own data
    folder, the shared collaborative model (saved under MODEL_CACHE_DIR) and content indexed anew
    from the shared catalog. Each is stopped when `stack` closes, also if a later one fails."""
    env = service_env(tmp, args, prefix)
    replicas: list[ServerProcess] = []
    for k in range(2, args.replicas + 1):
        replicas.append(ServerProcess(data_dir=tmp / f"data-{k}", env=env, log_path=tmp / f"server-{k}.log"))
        stack.callback(replicas[-1].stop)
        replicas[-1].start(timeout_s=300)
    for replica in replicas:
        with Client(replica.url, timeout=60.0) as client:
            if client.model_status()["collaborative"]["serving"] is None:
                raise RuntimeError(f"replica {replica.url} did not load the trained collaborative model")
            if not args.no_content:
                wait_for_content(client, n_items, ReplayOptions())
    if replicas:
        print(f"replicas: {len(replicas)} more started, model loaded, content indexed")
    return replicas


def service_env(tmp: Path, args: argparse.Namespace, prefix: str) -> dict[str, str]:
    """The server's settings for a benchmark world kept under `tmp` (models trained on request)."""
    env = {
        "MODEL_CACHE_DIR": str(tmp / "models"),
        "OVERDRIVE_COMPILED_MODELS_DIR": os.environ.get(
            "OVERDRIVE_COMPILED_MODELS_DIR", str(Path(tempfile.gettempdir()) / "overdrive-bench-compiled")),
        "OVERDRIVE_CONTENT_FEATURES": "false" if args.no_content else "true",
        "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0",
        "OVERDRIVE_TRAIN_ON_START": "false",
        # What the ranker carries, not what admission lets in: with the default in-flight bound (4)
        # most of 64 closed-loop connections would be answered 503 (benchmarks.bench_storm measures that).
        "OVERDRIVE_MAX_INFLIGHT_RANKINGS": "0",
        "OVERDRIVE_MAX_INFLIGHT_SIGNAL_WRITES": "0",
    }
    if args.redis:
        env |= {"REDIS_URL": args.redis, "OVERDRIVE_REDIS_PREFIX": prefix}
        if getattr(args, "replicas", 1) > 1:  # ranker replicas on one Redis, without Kafka: refused unless allowed
            env["OVERDRIVE_ALLOW_REPLICAS_WITHOUT_KAFKA"] = "true"
    return env


def rank_bodies(ids: list[str], users: list[str], n_candidates: int, limit: int, n: int = 512) -> list[bytes]:
    """`n` requests from different users, each with its own random candidate set from the catalog."""
    rng = np.random.default_rng(7)
    return [
        orjson.dumps({
            "user_id": users[int(rng.integers(len(users)))],
            "candidate_items": [{"id": ids[j]} for j in rng.choice(len(ids), size=min(n_candidates, len(ids)), replace=False)],
            "limit": limit,
        })
        for _ in range(n)
    ]


def _runs(ports: Sequence[int], requests: list[bytes], args: argparse.Namespace, rate: float,
          servers: Mapping[str, int]) -> tuple[dict[str, LoadResult], dict[str, float]]:
    """Saturation and paced runs; and the CPU use (in cores) of `servers` (name -> pid), of the
    load generator (this process) and of the whole machine during the saturation run."""
    cpu = cpu_meter({**servers, "load generator": os.getpid()})
    saturation = run_load("127.0.0.1", ports, requests, connections=args.connections,
                          duration_s=args.duration, warmup_s=args.warmup)
    used = cpu()
    paced = run_load("127.0.0.1", ports, requests, connections=args.connections,
                     duration_s=args.duration, warmup_s=args.warmup, rate=rate)
    return {"saturation": _checked("saturation", saturation), "paced": _checked("paced", paced)}, used


def _checked(name: str, result: LoadResult) -> LoadResult:
    """Errors end the benchmark; so does a closed loop with no answer. A paced run may answer
    nothing within its window (a server far behind the offered rate): that is its result."""
    if result.errors or (not result.requests and not name.startswith("paced")):
        raise RuntimeError(f"{name} run: errors {result.errors}, {result.requests} answers")
    if not result.requests:
        print(f"{name} run: no request answered within the measured window (far behind the offered rate)")
    return result


def _reference_runs(name: str, bodies: list[bytes], args: argparse.Namespace, rate: float) -> tuple[dict[str, LoadResult], dict[str, float]]:
    ports: list[int] = []
    while len(ports) < args.replicas:  # distinct: two children must not race for one port
        if (port := free_port()) not in ports:
            ports.append(port)
    with ExitStack() as stack:
        pids = {f"process {n}": stack.enter_context(reference_server(name, port)).pid for n, port in enumerate(ports, 1)}
        requests = [post_request("127.0.0.1", ports[0], RANK_PATH, b) for b in bodies]
        return _runs(ports, requests, args, rate, pids)


@contextmanager
def reference_server(name: str, port: int, *, timeout_s: float = 30.0) -> Iterator[subprocess.Popen]:
    """The `name` reference app served by `overdrive.app.serve` in a child process on `port`."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ranking", "--serve", name, str(port)])
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{name} endpoint did not start") from None
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def _row(name: str, r: LoadResult, limit: int) -> dict:
    return {"endpoint": name, "requests_per_s": round(r.rps, 1), "recommendations_per_s": round(r.rps * limit, 1),
            "p50_ms": round(r.percentile(50), 2), "p95_ms": round(r.percentile(95), 2),
            "p99_ms": round(r.percentile(99), 2), "requests": r.requests}


def _report(endpoints: dict[str, dict[str, LoadResult]], cpus: dict[str, dict[str, float]],
            args: argparse.Namespace, rate: float) -> dict:
    rows = {f"{name} {run}": _row(name, result, args.limit)
            for name, runs in endpoints.items() for run, result in runs.items()}
    print(f"\n{'run':<18}{'req/s':>10}{'recs/s':>11}{'P50 ms':>9}{'P95 ms':>9}{'P99 ms':>9}")
    for name, row in rows.items():
        print(f"{name:<18}{row['requests_per_s']:>10,.0f}{row['recommendations_per_s']:>11,.0f}"
              f"{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['p99_ms']:>9.2f}")
    if any(cpus.values()):
        print(f"\nCPU during the saturation runs, in cores of {os.cpu_count()}:")
        for name, used in cpus.items():
            print(f"  {name:<10} " + ", ".join(f"{part} {cores:.2f}" for part, cores in used.items()))
    rank, bare, framework = (endpoints[n]["saturation"].rps for n in ("rank", "bare", "framework"))
    ratio = rank / bare
    max_recs = rank * args.limit
    paced = endpoints["rank"]["paced"]
    checks = {
        f"rank throughput >= {SPEC_RECS_PER_S:,} recommendations/s": max_recs >= SPEC_RECS_PER_S,
        f"rank P95 < {SPEC_P95_MS:.0f} ms at {rate * args.limit:,.0f} recommendations/s": paced.percentile(95) < SPEC_P95_MS
        and paced.rps >= 0.95 * rate,
        "rank throughput >= half the bare endpoint's": ratio >= 0.5,
    }
    print(f"\nrank / bare throughput: {ratio:.2f}   (paced run: {paced.rps:,.0f} of {rate:,.0f} req/s offered)")
    print(f"framework / bare: {framework / bare:.2f}   rank / framework: {rank / framework:.2f}")
    for what, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {what}")
    return {"connections": args.connections, "candidates": args.candidates, "limit": args.limit,
            "rate": rate, "redis": bool(args.redis), "replicas": args.replicas, "content": not args.no_content,
            "runs": rows, "cpu_cores_at_saturation": cpus, "ratio": ratio, "framework_ratio": framework / bare, "targets": checks}


if __name__ == "__main__":
    sys.exit(main())
