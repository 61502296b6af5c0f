"""What observability costs, and how fast the dashboard is, against the issue's targets.

    python -m benchmarks.bench_observability [--signals 100000] [--rounds 3] [--duration 10]

One synthetic world (embedded default, content features off; `--signals` signals from `--users`
users over `--items` items, ingested directly), served by three processes of the same code at once,
on copies of the same data folder and one trained collaborative model, differing only in logging:

- **json+access**: `OVERDRIVE_LOG_FORMAT=json`, level info, uvicorn's access log on: two JSON lines
  per ranking (the spec's "Processing recommendation" and the access line);
- **json**: the same without the access log: one line per ranking;
- **off**: level warning, no access log: no line per ranking;
- **off again**: the same as off, a control: how far two alike processes differ on this machine.

Targets and how each is measured:

1. *Dashboard pages load in < 300 ms with 100,000 signals in the store*: every page (and its JSON)
   fetched 30 times in turn from json+access after 2,000 rankings and a running experiment (so
   every page has data); server response time per page, P50 / P95 / max. With Chromium and
   chromedriver installed, each page is also loaded 5 times in headless Chromium: the browser's
   whole load (navigation timing: request to load event, scripts and stylesheets included) and
   the time until every chart is drawn.
2. *The dashboard's own polling costs < 1 % of the server's CPU at the spec's load*: the spec's
   10,000 recommendations/s is 500 rank requests/s of 20 items. The server's CPU (from /proc) is
   measured over a paced run at that rate; the dashboard's cost is its sampler (one point every
   `OVERDRIVE_DASHBOARD_SAMPLE_SECONDS`, 5 s: the server reports its CPU per point) plus one open
   overview page's poll per interval (CPU per poll from 300 polls against the otherwise idle
   server, less the idle server's own CPU over the same time). Also measured directly: paced runs
   alternating with and without a client polling the overview every second (5× the page's rate).
3. *Logging in JSON costs < 3 % of rank throughput against logging off, same run*: saturation runs
   (closed loop, 64 connections) alternating json+access, json and off for `--rounds` rounds, before
   anything else touches the servers; the medians compared. The ranking observer's own cost per
   ranking (with and without its log line) is also timed in-process.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from benchmarks.load import post_request, run_load
from benchmarks.ranking import RANK_PATH, rank_bodies
from overdrive.evaluation.replay import ReplayOptions, train_models
from overdrive.evaluation.server_process import ServerProcess


def cpu_s(pid: int) -> float:
    """Seconds of CPU the process's threads have used, to the nanosecond (/proc/PID/task/*/schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return total / 1e9


SPEC_RATE = 500.0  # 10,000 recommendations/s at 20 items a ranking
PAGES = ["/dashboard", "/dashboard/models", "/dashboard/catalog", "/dashboard/trending", "/dashboard/users",
         "/dashboard/users/{user}", "/dashboard/experiments"]
APIS = ["/dashboard/api/overview", "/dashboard/api/models", "/dashboard/api/catalog", "/dashboard/api/trending",
        "/dashboard/api/users/{user}", "/dashboard/api/experiments"]
CONFIGS = {
    "json+access": {"OVERDRIVE_LOG_LEVEL": "info", "OVERDRIVE_LOG_FORMAT": "json", "OVERDRIVE_ACCESS_LOG": "true"},
    "json": {"OVERDRIVE_LOG_LEVEL": "info", "OVERDRIVE_LOG_FORMAT": "json", "OVERDRIVE_ACCESS_LOG": "false"},
    "off": {"OVERDRIVE_LOG_LEVEL": "warning", "OVERDRIVE_LOG_FORMAT": "json", "OVERDRIVE_ACCESS_LOG": "false"},
    "off again": {"OVERDRIVE_LOG_LEVEL": "warning", "OVERDRIVE_LOG_FORMAT": "json", "OVERDRIVE_ACCESS_LOG": "false"},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_observability", description=__doc__.split("\n")[0])
    p.add_argument("--signals", type=int, default=100_000)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per load run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--no-browser", action="store_true", help="skip the headless Chromium page loads")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-obs-") as folder:
        tmp = Path(folder)
        servers, ids, users = _start(tmp, args)
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        try:
            logging_cost = _logging(servers, ids, users, args)  # first: the three servers still alike
            ranked_user = _populate(servers["json+access"], ids, users)
            pages = _page_loads(servers["json+access"], ranked_user)
            browser = None if args.no_browser else _browser_loads(servers["json+access"], ranked_user)
            polling = _polling(servers["json+access"], ids, users, args)
        finally:
            for server in servers.values():
                server.stop()
        load_after = Path("/proc/loadavg").read_text().split()[:3]
    observer = _observer_cost()
    _report(args, pages, browser, polling, logging_cost, observer)
    print(f"machine load average (1, 5, 15 min) before the runs {' '.join(load_before)}, after {' '.join(load_after)}")
    return 0


# -------------------------------------------------------------------------------- the world


def _start(tmp: Path, args: argparse.Namespace) -> tuple[dict[str, ServerProcess], list[str], list[str]]:
    from overdrive.data.synthetic import WorldConfig, generate_world
    from overdrive.ingest.direct import ingest_directly

    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items,
                                       signals_per_user=args.signals / args.users, seed=1))
    print(f"world: {len(world.items):,} items, {len(world.signals):,} signals, {len(world.user_ids):,} users")
    ingest_directly(tmp / "data-json+access", world.items, world.signals)
    for name in CONFIGS:
        if name != "json+access":
            shutil.copytree(tmp / "data-json+access", tmp / f"data-{name.replace(' ', '-')}")
    common = {"MODEL_CACHE_DIR": str(tmp / "models"), "OVERDRIVE_CONTENT_FEATURES": "false",
              "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
              "OVERDRIVE_DASHBOARD_SAMPLE_SECONDS": "5", "OVERDRIVE_CF_TUNE": "false",
              # the cost of logging at full load, not admission's 503s (benchmarks.bench_storm)
              "OVERDRIVE_MAX_INFLIGHT_RANKINGS": "0", "OVERDRIVE_MAX_INFLIGHT_SIGNAL_WRITES": "0"}
    # The model is trained by a server of its own; the three measured servers all load it from disk.
    shutil.copytree(tmp / "data-json+access", tmp / "data-trainer")
    trainer = ServerProcess(data_dir=tmp / "data-trainer", env=common, log_path=tmp / "server-trainer.log").start(timeout_s=300)
    try:
        with httpx.Client(base_url=trainer.url, timeout=300.0) as client:
            started = time.perf_counter()
            jobs = train_models(client, ReplayOptions())
            if any(": failed" in job for job in jobs):
                raise RuntimeError(f"training failed: {jobs}")
            print(f"collaborative model trained in {time.perf_counter() - started:.1f} s")
    finally:
        trainer.stop()
    servers: dict[str, ServerProcess] = {}
    try:
        for name, env in CONFIGS.items():
            started = time.perf_counter()
            folder = name.replace(" ", "-")
            servers[name] = ServerProcess(data_dir=tmp / f"data-{folder}", env={**common, **env},
                                          log_path=tmp / f"server-{folder}.log").start(timeout_s=300)
            print(f"server {name}: ready in {time.perf_counter() - started:.1f} s")
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers, [i["id"] for i in world.items], world.user_ids


def _populate(server: ServerProcess, ids: list[str], users: list[str]) -> str:
    """An experiment, 2,000 rankings (half through it) and clicks on some: every page has data."""
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        experiment = client.post("/experiments", json={
            "name": "bench", "state": "running", "salt": "bench",
            "arms": [{"name": "enhanced", "weights": {"collaborative": 0.5, "real_time": 0.5}},
                     {"name": "fresh", "weights": {"freshness": 1.0}}]})
        experiment.raise_for_status()
        clicks = []
        for n in range(2000):
            user = users[n % len(users)]
            body = {"user_id": user, "limit": 20, **({"strategy": "enhanced"} if n % 2 else {})}
            items = client.post(RANK_PATH, json=body).raise_for_status().json()["items"]
            if items and n % 3 == 0:
                clicks.append({"user_id": user, "signal_type": "click", "content_id": items[0]["id"]})
        client.post("/signals/batch", json={"signals": clicks}).raise_for_status()
        signals = client.get("/performance/system").json()["store"]["signals"]
        print(f"populated: 2,000 rankings, {len(clicks)} clicks, an experiment; {signals:,} signals in the store")
    time.sleep(5.5)  # a sampler point covers it
    return users[0]


# ------------------------------------------------------------------------------ page loads


def _page_loads(server: ServerProcess, user: str, n: int = 30) -> dict[str, dict[str, float]]:
    out = {}
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        for path in PAGES + APIS:
            url = path.format(user=user)
            times = []
            for _ in range(n):
                started = time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - started) * 1000.0)
                r.raise_for_status()
            out[path] = _stats(times)
            print(f"  {path:<34} P50 {out[path]['p50']:7.1f} ms  P95 {out[path]['p95']:7.1f} ms  "
                  f"max {out[path]['max']:7.1f} ms  (first {times[0]:.1f} ms)")
    return out


def _browser_loads(server: ServerProcess, user: str, n: int = 5) -> dict[str, dict[str, float]] | None:
    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if not chromium or not driver_bin:
        print("  (no chromium/chromedriver/selenium: browser page loads skipped)")
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    out = {}
    try:
        driver.get(server.url + "/dashboard")  # the static files into the cache, as for any later visit
        for path in PAGES:
            loads, drawn = [], []
            for _ in range(n):
                driver.get(server.url + path.format(user=user))
                deadline = time.monotonic() + 10
                while not driver.execute_script("return document.body && document.body.dataset.ready === '1'"):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{path}: charts not drawn within 10 s")
                    time.sleep(0.01)
                nav = driver.execute_script(
                    "const e = performance.getEntriesByType('navigation')[0]; return [e.duration, e.loadEventEnd];")
                ready = driver.execute_script("return window.__dashboardReadyAt || performance.now()")
                loads.append(nav[0])
                drawn.append(ready)
            out[path] = {"load": _stats(loads), "drawn": _stats(drawn)}
            print(f"  browser {path:<26} load P50 {out[path]['load']['p50']:6.1f} ms  max {out[path]['load']['max']:6.1f} ms"
                  f"   charts drawn P50 {out[path]['drawn']['p50']:6.1f} ms  max {out[path]['drawn']['max']:6.1f} ms")
    finally:
        driver.quit()
    return out


# --------------------------------------------------------------------------------- polling


def _polling(server: ServerProcess, ids: list[str], users: list[str], args: argparse.Namespace) -> dict:
    pid = server.proc.pid  # type: ignore[union-attr]
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        since = client.get("/dashboard/api/overview").json()["history"][-1]["t"]
        before, started = cpu_s(pid), time.perf_counter()
        time.sleep(10.0)
        idle_cores = (cpu_s(pid) - before) / (time.perf_counter() - started)
        polls = 300
        before, started = cpu_s(pid), time.perf_counter()
        for _ in range(polls):
            client.get("/dashboard/api/overview", params={"since": since}).raise_for_status()
        elapsed = time.perf_counter() - started
        poll_ms = ((cpu_s(pid) - before) - idle_cores * elapsed) / polls * 1000.0
        sampler = client.get("/dashboard/api/overview").json()["sampler"]
    sampler_ms = sampler["cpu_ms_total"] / sampler["ticks"]
    bodies = rank_bodies(ids, users, 100, 20)
    requests = [post_request("127.0.0.1", server.port, RANK_PATH, b) for b in bodies]
    interval = 5.0
    per_request: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for polling in (False, True):
            stop = threading.Event()
            poller = threading.Thread(target=_poll_every, args=(server.url, 1.0, stop), daemon=True)
            if polling:
                poller.start()
            before = cpu_s(pid)
            run = run_load("127.0.0.1", server.port, requests, connections=32, duration_s=args.duration,
                           warmup_s=0.0, rate=SPEC_RATE)
            used = cpu_s(pid) - before
            stop.set()
            if polling:
                poller.join()
            if run.errors:
                raise RuntimeError(f"paced run: errors {run.errors}")
            answered = run.requests + 1e-9
            per_request[polling].append(used / answered * 1000.0)
            print(f"  round {round_ + 1} paced {SPEC_RATE:g} req/s {'with' if polling else 'without'} a poller (1/s): "
                  f"{run.rps:.0f} req/s answered, P95 {run.percentile(95):.2f} ms, server {used / args.duration:.3f} cores, "
                  f"{used / answered * 1000.0:.3f} ms CPU a request")
    cpu_per_request_ms = statistics.median(per_request[False])
    at_load = cpu_per_request_ms / 1000.0 * SPEC_RATE  # cores the server needs for the spec's rate
    dashboard_cores = (sampler_ms + poll_ms) / 1000.0 / interval
    return {"poll_cpu_ms": poll_ms, "sampler_cpu_ms": sampler_ms, "sampler_ticks": sampler["ticks"],
            "idle_cores": idle_cores, "cpu_per_request_ms": cpu_per_request_ms, "server_cores_at_spec_load": at_load,
            "interval_s": interval, "dashboard_share": dashboard_cores / at_load,
            "ab_cpu_ms_per_request_without": per_request[False], "ab_cpu_ms_per_request_with_poller_1s": per_request[True]}


def _poll_every(url: str, every_s: float, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        since = 0.0
        while not stop.wait(every_s):
            history = client.get("/dashboard/api/overview", params={"since": since}).json()["history"]
            if history:
                since = history[-1]["t"]


# --------------------------------------------------------------------------------- logging


def _logging(servers: dict[str, ServerProcess], ids: list[str], users: list[str], args: argparse.Namespace) -> dict:
    """Saturation rounds alternating the three servers: throughput, and the server's CPU per
    request (all its threads), which other processes on the machine disturb far less."""
    bodies = rank_bodies(ids, users, 100, 20)
    rps: dict[str, list[float]] = {name: [] for name in servers}
    cpu_ms: dict[str, list[float]] = {name: [] for name in servers}
    for round_ in range(args.rounds):
        order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            server = servers[name]
            requests = [post_request("127.0.0.1", server.port, RANK_PATH, b) for b in bodies]
            pid = server.proc.pid  # type: ignore[union-attr]
            warm = run_load("127.0.0.1", server.port, requests, connections=args.connections, duration_s=1.0, warmup_s=0.0)
            before = cpu_s(pid)
            run = run_load("127.0.0.1", server.port, requests, connections=args.connections,
                           duration_s=args.duration, warmup_s=0.0)
            used = cpu_s(pid) - before
            if run.errors or warm.errors or not run.requests:
                raise RuntimeError(f"{name}: errors {run.errors or warm.errors}")
            rps[name].append(run.rps)
            cpu_ms[name].append(used / run.requests * 1000.0)
            print(f"  round {round_ + 1} {name:<12} {run.rps:7.1f} req/s ({run.rps * 20:,.0f} recs/s)  "
                  f"P50 {run.percentile(50):.1f} ms  {cpu_ms[name][-1]:.3f} ms CPU a request")
    lines = {name: len(s._log_path.read_bytes().splitlines()) for name, s in servers.items()}
    return {"rps": rps, "cpu_ms_per_request": cpu_ms, "log_lines": lines}


# ---------------------------------------------------------------------------------- observer


def _observer_cost(n: int = 20_000) -> dict[str, float]:
    """The ranking observer's own cost per ranking (20 items, five components), in this process:
    with logging off, and with the JSON line written to a file."""
    import logging
    import random

    from overdrive.domain.types import RankedItem, RankResult
    from overdrive.observability import logs
    from overdrive.observability.rankings import RankingMonitor

    rng = random.Random(3)
    components = ["content_based", "collaborative", "real_time", "user_interests", "freshness"]
    results = []
    for k in range(500):
        items = [RankedItem(id=f"i{rng.randrange(2000)}", score=0.5, rank=r + 1,
                            scores={c: rng.random() / 5 for c in components}, components={c: rng.random() for c in components})
                 for r in range(20)]
        results.append(RankResult(user_id=f"u{k}", items=items, strategy="enhanced", request_id=f"r{k}",
                                  processing_time_ms=1.0, candidates_considered=100))
    out = {}
    with tempfile.NamedTemporaryFile("w", suffix=".log") as sink:
        for label, level in (("observer, logging off", "warning"), ("observer + JSON line", "info")):
            logs.configure(level, "json", stream=sink)
            monitor = RankingMonitor()
            started = time.perf_counter()
            for i in range(n):
                monitor.observe(results[i % len(results)])
            out[label] = (time.perf_counter() - started) / n * 1e6
    logging.basicConfig(force=True)
    return out


# ---------------------------------------------------------------------------------- report


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1]}


def _report(args: argparse.Namespace, pages: dict, browser: dict | None, polling: dict, logging_cost: dict,
            observer: dict[str, float]) -> None:
    print("\n== 1. Dashboard pages with", f"{args.signals:,}", "signals in the store (target < 300 ms)")
    worst = max(pages.items(), key=lambda kv: kv[1]["p95"])
    print(f"server response: slowest P95 {worst[1]['p95']:.1f} ms ({worst[0]}); slowest max "
          f"{max(v['max'] for v in pages.values()):.1f} ms")
    if browser:
        worst_load = max(browser.items(), key=lambda kv: kv[1]["load"]["p50"])
        worst_drawn = max(browser.items(), key=lambda kv: kv[1]["drawn"]["p50"])
        print(f"headless Chromium: slowest page load P50 {worst_load[1]['load']['p50']:.1f} ms ({worst_load[0]}), "
              f"max {max(v['load']['max'] for v in browser.values()):.1f} ms; charts drawn by P50 "
              f"{worst_drawn[1]['drawn']['p50']:.1f} ms ({worst_drawn[0]})")
    print("\n== 2. The dashboard's own cost at the spec's load (target < 1 % of the server's CPU)")
    print(f"sampler: {polling['sampler_cpu_ms']:.2f} ms CPU a point on the event loop ({polling['sampler_ticks']} points); "
          f"one open overview page: {polling['poll_cpu_ms']:.2f} ms CPU a poll; one of each every {polling['interval_s']:g} s")
    print(f"server: {polling['cpu_per_request_ms']:.3f} ms CPU a ranking (median of {args.rounds} paced runs), so "
          f"{polling['server_cores_at_spec_load']:.3f} cores at {SPEC_RATE:g} req/s (10,000 recs/s); the dashboard: "
          f"{polling['dashboard_share'] * 100:.3f} % of that")
    without = polling["ab_cpu_ms_per_request_without"]
    with_poller = polling["ab_cpu_ms_per_request_with_poller_1s"]
    print(f"paced A/B, server ms CPU a request without / with a client polling every second (5x a page): "
          f"{', '.join(f'{v:.3f}' for v in without)} / {', '.join(f'{v:.3f}' for v in with_poller)} "
          f"(medians {statistics.median(without):.3f} / {statistics.median(with_poller):.3f})")
    print("\n== 3. JSON logging against logging off, same run (target < 3 % of rank throughput)")
    med = {name: statistics.median(v) for name, v in logging_cost["rps"].items()}
    cpu = {name: statistics.median(v) for name, v in logging_cost["cpu_ms_per_request"].items()}
    for name in med:
        print(f"{name:<12} median {med[name]:7.1f} req/s ({', '.join(f'{v:.1f}' for v in logging_cost['rps'][name])}); "
              f"median {cpu[name]:.3f} ms CPU a request ({', '.join(f'{v:.3f}' for v in logging_cost['cpu_ms_per_request'][name])}); "
              f"{logging_cost['log_lines'][name]:,} log lines")
    for name in ("json", "json+access", "off again"):
        print(f"{name}: {(1 - cpu['off'] / cpu[name]) * 100:+.2f} % of rank throughput by CPU a request, "
              f"{(1 - med[name] / med['off']) * 100:+.2f} % by the throughput medians, against off")
    per_request_us = cpu["off"] * 1000.0
    for label, us in observer.items():
        print(f"{label}: {us:.1f} µs a ranking in-process ({us / per_request_us * 100:.2f} % of off's "
              f"{per_request_us:.0f} µs CPU a request)")
    print(orjson.dumps({"pages": pages, "browser": browser, "polling": polling, "logging": logging_cost,
                        "medians": med, "cpu_medians": cpu, "observer_us": observer}).decode())


if __name__ == "__main__":
    sys.exit(main())
