"""A soak with faults (issue 21, item 3): mixed load for minutes while the service is hurt on a schedule.

    python -m benchmarks.soak --minutes 10 --mode embedded
    python -m benchmarks.soak --minutes 10 --mode scaled     # Redis + Tansu + two APIs, a worker, the trainer

Load (a few asyncio lanes on httpx, modest concurrency so load shedding stays the exception):
single signals with a `signal_id` and without one, batches of both, rankings
(`/rank/for-you/enhanced`), item writes and deletes, retrains (`POST /models/train`).

Faults, all in the first half of the run (the second half is quiet, so memory growth is measured on
processes that lived through it): SIGKILL of an API process 3x (restarted on the same data dir and
settings); scaled: SIGKILL of the worker (restarted), a Redis restart (appendonly: state survives),
a broker stall (SIGSTOP, a few seconds, SIGCONT). Each fault's window runs from its injection until
every API answers `/health/ready` again, plus a grace.

At the end it waits for readiness and for the counts to settle (up to 10 minutes; the report says
how long they took: with Kafka the worker may end the load minutes behind), then reconciles every
acknowledged signal against `GET /analytics/user/{id}` -> `signal_counts`, per user and type. Users that send
signals with ids and users that send signals without ids are distinct, so that:
- with ids, the expected count is exact: distinct acknowledged ids (a repeat is counted once);
- without ids, a request whose answer was lost (transport error, a 5xx other than a shed) may have
  been stored, and its retry is stored again: such attempts are "ambiguous" and widen the allowed
  range instead of counting as double-counted.
In scaled mode each id of a (user, type) counted short is traced: in the topic or not, applied by
the worker (its marker in Redis) or not, and the fault before its acknowledgement.

A 503 with `{"error": "overloaded"}` and `Retry-After` is load shedding (nothing was done; counted
separately, never an error). Every other 5xx is an error outside a fault window; inside one, only a
503 with `Retry-After` is allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from overdrive.evaluation.server_process import ServerProcess
from tests import real_servers

SIGNAL_TYPES = ("view", "like", "click", "share", "skip")
TOPIC = "overdrive-soak"


@dataclass
class SoakConfig:
    mode: str = "embedded"
    seconds: float = 600.0
    api_kills: int = 3
    worker_kills: int = 1
    redis_restarts: int = 1
    broker_stalls: int = 1
    stall_s: float = 5.0
    retrains: int | None = None  # default: one every ~2 minutes, at least one
    id_users: int = 40
    noid_users: int = 12
    items: int = 200
    grace_s: float = 3.0
    settle_timeout_s: float = 600.0  # a signal still uncounted this long after the load is lost
    seed: int = 21
    workdir: Path | None = None
    verbose: bool = True


@dataclass
class Window:
    kind: str
    start: float
    end: float | None = None
    detail: str = ""


@dataclass
class Report:
    mode: str
    seconds: float
    acked_requests: int = 0
    acked_signals: int = 0
    acked_with_id: int = 0
    acked_without_id: int = 0
    repeats_acked: int = 0  # an id acknowledged more than once (a retry after a lost answer)
    counted: int = 0
    lost: int = 0
    settled_s: float | None = None  # seconds after the load until every count matched (None: never)
    double_counted_with_id: int = 0
    double_counted_without_id: int = 0  # beyond what ambiguous attempts allow
    ambiguous_without_id: int = 0  # attempts without id whose answer was lost: may count once more
    ambiguous_counted: int = 0  # of those, how many the service did count
    unacked_with_id: int = 0  # given up (never acknowledged); may or may not be stored
    http_5xx_outside: int = 0
    http_5xx_inside: int = 0
    http_5xx_inside_bad: int = 0  # inside a window but not a 503 with Retry-After
    shed_503: int = 0
    unexpected_4xx: int = 0  # other than 404 on a delete, 409 on a retrain, 429
    transport_errors_outside: int = 0
    transport_errors_inside: int = 0
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_kib: dict[str, dict[str, int]] = field(default_factory=dict)
    rss_growth_last_half_pct: dict[str, float] = field(default_factory=dict)
    rss_series_mib: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # (s, MiB) every ~10 % of the run
    windows: list[dict] = field(default_factory=list)
    retrains: dict[str, int] = field(default_factory=dict)
    errors_sample: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    lost_traced: list[str] = field(default_factory=list)  # scaled: where each lost id (with an id) stopped

    def ok(self) -> bool:
        return (self.lost == 0 and self.double_counted_with_id == 0 and self.double_counted_without_id == 0
                and self.http_5xx_outside == 0 and self.http_5xx_inside_bad == 0 and self.transport_errors_outside == 0
                and self.unexpected_4xx == 0)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children_rss_kib(pid: int) -> int:
    """The RSS of a process's children (an embedded API's retrain forkserver and multiprocessing's
    resource tracker; a retrain is the forkserver's child, not counted: it ends with its retrain)."""
    children: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():  # each thread lists the children it started
            children.update(int(c) for c in (task / "children").read_text().split())
    except OSError:
        return 0
    return sum(_rss_kib(child) for child in children)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Cluster:
    """The processes under test: one API (embedded), or as `deploy/compose.yaml` runs scaled mode:
    Redis + Tansu + two API replicas that follow the one trainer's versions + a worker + the trainer."""

    def __init__(self, cfg: SoakConfig, tmp: Path) -> None:
        self.cfg = cfg
        self.tmp = tmp
        self.apis: list[ServerProcess] = []
        self.worker: real_servers.WorkerProcess | None = None
        self.trainer: real_servers.WorkerProcess | None = None
        self.redis: real_servers.RedisServer | None = None
        self.broker: real_servers.Tansu | None = None

    def start(self) -> None:
        base = {
            "MODEL_CACHE_DIR": str(self.tmp / "models"),
            "OVERDRIVE_COMPILED_MODELS_DIR": str(real_servers.COMPILED_MODELS_DIR),
            "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0",
            "OVERDRIVE_TRAIN_ON_START": "false",
            "OVERDRIVE_CONTENT_FEATURES": "false",
        }
        if self.cfg.mode == "embedded":
            self.apis = [ServerProcess(data_dir=self.tmp / "api0", env=base, log_path=self.tmp / "api0.log").start(timeout_s=120)]
            return
        why = real_servers.tansu_missing() or real_servers.redis_server_missing()
        if why:
            raise RuntimeError(f"scaled mode needs Redis and the Tansu broker: {why}")
        self.redis = real_servers.RedisServer(appendonly=True).start()
        self.broker = real_servers.Tansu(log_dir=self.tmp).start()
        self.broker.create_topic(TOPIC, partitions=4)
        env = {**base, "REDIS_URL": self.redis.url, "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
               "OVERDRIVE_KAFKA_TOPIC": TOPIC, "OVERDRIVE_KAFKA_PARTITIONS": "4", "OVERDRIVE_REDIS_PREFIX": "soak:",
               "OVERDRIVE_KAFKA_DELIVERY_TIMEOUT_MS": "3000", "OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS": "6000",
               "OVERDRIVE_TRAINER": "external"}
        self.apis = [ServerProcess(data_dir=self.tmp / f"api{n}", env=env, log_path=self.tmp / f"api{n}.log").start(timeout_s=120)
                     for n in range(2)]
        self.worker = real_servers.WorkerProcess(env=env, log_path=self.tmp / "worker.log").start()
        self.trainer = real_servers.WorkerProcess(env=env, log_path=self.tmp / "trainer.log", module="overdrive.trainer").start()

    def stop(self) -> None:
        if self.broker is not None and self.broker.stopped_by_us:
            self.broker.resume()
        for process in (self.worker, self.trainer):
            if process is not None:
                process.kill()
        for a in self.apis:
            a.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.redis is not None:
            self.redis.stop()


class Soak:
    def __init__(self, cfg: SoakConfig, cluster: Cluster) -> None:
        self.cfg = cfg
        self.cluster = cluster
        self.rng = random.Random(cfg.seed)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + cfg.seconds
        self.load_done = self.deadline  # when the load lanes ended (set then)
        self.windows: list[Window] = []
        self.requests: list[tuple[str, float, float, int | None, bool, str]] = []  # endpoint, start, end, status, retry-after, error
        self.acked_ids: dict[str, tuple[str, str]] = {}  # id -> (user, type)
        self.id_ack_times: Counter = Counter()
        self.id_acked_at: dict[str, float] = {}  # id -> seconds into the run of its first acknowledgement
        self.noid_acked: Counter = Counter()  # (user, type) -> n
        self.noid_ambiguous: Counter = Counter()  # (user, type) -> attempts whose answer was lost
        self.unacked_ids: dict[str, tuple[str, str]] = {}
        self.acked_requests = 0
        self.rss: dict[str, list[tuple[float, int, int]]] = defaultdict(list)  # api -> (t, pid, kib)
        self.retrains: Counter = Counter()
        self.seq = 0
        self.id_users = [f"soak-id-{n}" for n in range(cfg.id_users)]
        self.noid_users = [f"soak-noid-{n}" for n in range(cfg.noid_users)]
        self.live_items: set[str] = set()

    def log(self, msg: str) -> None:
        if self.cfg.verbose:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", flush=True)

    # ------------------------------------------------------------------ requests

    def url(self) -> str:
        return self.rng.choice(self.cluster.apis).url

    async def call(self, client: httpx.AsyncClient, endpoint: str, method: str, path: str, body: object = None) -> httpx.Response | None:
        start = time.monotonic()
        try:
            r = await client.request(method, self.url() + path, json=body)
        except httpx.HTTPError as exc:
            self.requests.append((endpoint, start, time.monotonic(), None, False, type(exc).__name__))
            return None
        err = ""
        if r.status_code == 503:
            with contextlib.suppress(ValueError):
                err = str(r.json().get("error", ""))
        self.requests.append((endpoint, start, time.monotonic(), r.status_code, bool(r.headers.get("retry-after")), err))
        return r

    @staticmethod
    def _shed(r: httpx.Response) -> bool:
        if r.status_code != 503 or not r.headers.get("retry-after"):
            return False
        with contextlib.suppress(ValueError):
            return r.json().get("error") == "overloaded"
        return False

    async def _backoff(self, r: httpx.Response | None) -> None:
        wait = 0.2
        if r is not None and r.headers.get("retry-after"):
            with contextlib.suppress(ValueError):
                wait = min(2.0, float(r.headers["retry-after"]))
        await asyncio.sleep(wait * (0.5 + self.rng.random()))

    def _signal(self, with_id: bool) -> dict:
        self.seq += 1
        user = self.rng.choice(self.id_users if with_id else self.noid_users)
        s = {"user_id": user, "signal_type": self.rng.choice(SIGNAL_TYPES), "content_id": f"soak-item-{self.rng.randrange(self.cfg.items)}"}
        if with_id:
            s["signal_id"] = f"soak-{self.seq}-{uuid.uuid4().hex[:8]}"
        return s

    async def send_signals(self, client: httpx.AsyncClient, signals: list[dict], with_id: bool) -> None:
        """Send until acknowledged (retrying the same body), or give up well after the run's end."""
        batch = len(signals) > 1
        path, body = ("/signals/batch", {"signals": signals}) if batch else ("/signals/process", signals[0])
        endpoint = "signals/batch" if batch else "signals/process"
        give_up = max(self.deadline, time.monotonic()) + 120.0
        while True:
            r = await self.call(client, endpoint, "POST", path, body)
            if r is not None and r.status_code == 200:
                self.acked_requests += 1
                for s in signals:
                    key = (s["user_id"], s["signal_type"])
                    if with_id:
                        self.acked_ids[s["signal_id"]] = key
                        self.id_ack_times[s["signal_id"]] += 1
                        self.id_acked_at.setdefault(s["signal_id"], time.monotonic() - self.t0)
                    else:
                        self.noid_acked[key] += 1
                return
            uncertain = r is None or (r.status_code >= 500 and not self._shed(r))
            if r is not None and 400 <= r.status_code < 500 and r.status_code != 429:
                raise RuntimeError(f"{endpoint} answered {r.status_code}: {r.text[:300]}")
            if uncertain and not with_id:
                for s in signals:
                    self.noid_ambiguous[(s["user_id"], s["signal_type"])] += 1
            if time.monotonic() > give_up:
                if with_id:
                    for s in signals:
                        self.unacked_ids[s["signal_id"]] = (s["user_id"], s["signal_type"])
                return
            await self._backoff(r)

    # ------------------------------------------------------------------ lanes

    async def lane_signals(self, with_id: bool) -> None:
        async with httpx.AsyncClient(timeout=30.0) as client:
            while time.monotonic() < self.deadline:
                await self.send_signals(client, [self._signal(with_id)], with_id)

    async def lane_batches(self) -> None:
        async with httpx.AsyncClient(timeout=30.0) as client:
            while time.monotonic() < self.deadline:
                with_id = self.rng.random() < 0.7
                await self.send_signals(client, [self._signal(with_id) for _ in range(self.rng.randint(2, 40))], with_id)
                await asyncio.sleep(0.05)

    async def lane_rank(self) -> None:
        async with httpx.AsyncClient(timeout=30.0) as client:
            while time.monotonic() < self.deadline:
                user = self.rng.choice(self.id_users + self.noid_users)
                body: dict = {"user_id": user, "limit": 10}
                if self.rng.random() < 0.5:
                    body["candidate_items"] = [{"id": f"soak-item-{i}"} for i in self.rng.sample(range(self.cfg.items), 50)]
                r = await self.call(client, "rank/for-you/enhanced", "POST", "/rank/for-you/enhanced", body)
                if r is None or r.status_code != 200:
                    await self._backoff(r)

    async def lane_items(self) -> None:
        async with httpx.AsyncClient(timeout=30.0) as client:
            while time.monotonic() < self.deadline:
                n = self.rng.randrange(self.cfg.items)
                item_id = f"soak-item-{n}"
                roll = self.rng.random()
                if roll < 0.2 and self.live_items:
                    victim = self.rng.choice(sorted(self.live_items))
                    r = await self.call(client, "items/{id} DELETE", "DELETE", f"/items/{victim}")
                    if r is not None and r.status_code in (200, 204, 404):
                        self.live_items.discard(victim)
                elif roll < 0.4:
                    items = [self._item(i) for i in self.rng.sample(range(self.cfg.items), self.rng.randint(2, 20))]
                    r = await self.call(client, "items/batch", "POST", "/items/batch", {"items": items})
                    if r is not None and r.status_code == 201:
                        self.live_items.update(i["id"] for i in items)
                else:
                    r = await self.call(client, "items", "POST", "/items", self._item(n))
                    if r is not None and r.status_code in (200, 201):
                        self.live_items.add(item_id)
                if r is None or r.status_code >= 500:
                    await self._backoff(r)
                await asyncio.sleep(0.05)

    def _item(self, n: int) -> dict:
        return {"id": f"soak-item-{n}", "type": self.rng.choice(["video", "text", "image"]),
                "tags": [f"topic{n % 7}", f"t{self.rng.randrange(20)}"], "author_id": f"author{n % 13}",
                "text": f"soak item {n} about topic {n % 7}"}

    async def lane_rss(self) -> None:
        while time.monotonic() < self.deadline:
            self.sample_rss()
            await asyncio.sleep(2.0)

    def sample_rss(self) -> None:
        now = time.monotonic() - self.t0
        processes = {f"api{n}": api.proc for n, api in enumerate(self.cluster.apis)}
        if self.cluster.trainer is not None:  # a batch job: its memory follows the log it reads
            processes["trainer"] = self.cluster.trainer.proc
        for name, proc in processes.items():
            if proc is not None and proc.poll() is None:
                kib = _rss_kib(proc.pid)
                if kib:
                    self.rss[name].append((now, proc.pid, kib))
                if name.startswith("api") and (kib := _children_rss_kib(proc.pid)):
                    self.rss[f"{name}'s children"].append((now, proc.pid, kib))

    # ------------------------------------------------------------------ faults

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        end = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                ok = True
                for api in self.cluster.apis:
                    try:
                        ok = ok and (await client.get(f"{api.url}/health/ready")).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                if ok:
                    return
                if time.monotonic() > end:
                    raise RuntimeError("not every API became ready")
                await asyncio.sleep(0.2)

    async def fault(self, kind: str) -> None:
        w = Window(kind, time.monotonic())
        self.windows.append(w)
        c = self.cluster
        if kind == "api-sigkill":
            n = sum(x.kind == kind for x in self.windows) % len(c.apis)
            api = c.apis[n]
            w.detail = f"api{n} pid {api.proc.pid if api.proc else '?'}"
            api.kill()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(api.start, timeout_s=120)
        elif kind == "worker-sigkill":
            assert c.worker is not None
            c.worker.kill()
            await asyncio.sleep(1.0)
            w.detail = f"pid {c.worker.proc.pid if c.worker.proc else '?'}"
            c.worker.start()
        elif kind == "redis-restart":
            assert c.redis is not None
            c.redis.kill()
            await asyncio.sleep(3.0)
            await asyncio.to_thread(c.redis.start)
        elif kind == "broker-stall":
            assert c.broker is not None
            c.broker.pause()
            await asyncio.sleep(self.cfg.stall_s)
            c.broker.resume()
        await self.wait_ready()
        await asyncio.sleep(self.cfg.grace_s)
        w.end = time.monotonic()
        self.log(f"fault {kind} {w.detail}: window {w.end - w.start:.1f}s")

    async def lane_faults(self) -> None:
        cfg = self.cfg
        plan = ["api-sigkill"] * cfg.api_kills
        if cfg.mode == "scaled":
            plan += ["worker-sigkill"] * cfg.worker_kills + ["redis-restart"] * cfg.redis_restarts + ["broker-stall"] * cfg.broker_stalls
        # API kills within [10 %, 30 %] of the run, the other faults within [32 %, 45 %]: the second half is
        # quiet, and the restarted APIs have warmed up well before its start (the RSS growth is measured there)
        def spread(kinds: list[str], lo: float, hi: float) -> list[tuple[str, float]]:
            n = len(kinds)
            return [(k, self.t0 + cfg.seconds * (lo + (hi - lo) * (i / (n - 1) if n > 1 else 0.0))) for i, k in enumerate(kinds)]

        schedule = spread([p for p in plan if p == "api-sigkill"], 0.10, 0.30) + spread([p for p in plan if p != "api-sigkill"], 0.32, 0.45)
        for kind, at in schedule:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self.fault(kind)

    async def lane_retrain(self) -> None:
        n = self.cfg.retrains if self.cfg.retrains is not None else max(1, int(self.cfg.seconds // 120))
        async with httpx.AsyncClient(timeout=30.0) as client:
            for i in range(n):
                at = self.t0 + self.cfg.seconds * ((i + 0.5) / n + 0.05)  # not at a fault's instant (10 %, 20 %, ...)
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                r = await self.call(client, "models/train", "POST", "/models/train")
                self.retrains[str(r.status_code) if r is not None else "transport"] += 1

    # ------------------------------------------------------------------ run and reconcile

    async def run(self) -> Report:
        async with httpx.AsyncClient(timeout=60.0) as client:  # the catalog, before the load
            r = await client.post(f"{self.cluster.apis[0].url}/items/batch", json={"items": [self._item(n) for n in range(self.cfg.items)]})
            if r.status_code != 201:
                raise RuntimeError(f"seeding the catalog: {r.status_code} {r.text[:300]}")
            self.live_items.update(f"soak-item-{n}" for n in range(self.cfg.items))
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.cfg.seconds
        self.sample_rss()
        lanes = [self.lane_signals(True), self.lane_signals(True), self.lane_signals(False), self.lane_batches(),
                 self.lane_rank(), self.lane_items(), self.lane_rss(), self.lane_faults(), self.lane_retrain()]
        await asyncio.gather(*lanes)
        self.log("load done; waiting for readiness")
        self.load_done = time.monotonic()
        await self.wait_ready()
        self.sample_rss()
        return await self.reconcile()

    async def counts(self, client: httpx.AsyncClient, users: list[str]) -> dict[str, Counter]:
        out = {}
        url = self.cluster.apis[0].url
        for u in users:
            for _ in range(50):
                r = await client.get(f"{url}/analytics/user/{u}")
                if r.status_code == 200:
                    out[u] = Counter(r.json()["signal_counts"])
                    break
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError(f"/analytics/user/{u} answered {r.status_code}")
        return out

    def expected(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """(user, type) -> (lowest allowed, highest allowed)."""
        lo: Counter = Counter()
        hi: Counter = Counter()
        for key in self.acked_ids.values():
            lo[key] += 1
            hi[key] += 1
        for key in self.unacked_ids.values():
            hi[key] += 1
        for key, n in self.noid_acked.items():
            lo[key] += n
            hi[key] += n
        for key, n in self.noid_ambiguous.items():
            hi[key] += n
        return lo, hi

    def tally(self, got: dict[str, Counter], rep: Report) -> None:
        lo, hi = self.expected()
        rep.counted = rep.lost = rep.double_counted_with_id = rep.double_counted_without_id = rep.ambiguous_counted = 0
        rep.mismatches = []
        keys = set(lo) | {(u, t) for u, c in got.items() for t in c}
        for u, t in sorted(keys):
            n = got.get(u, Counter()).get(t, 0)
            rep.counted += n
            if n < lo[(u, t)]:
                rep.lost += lo[(u, t)] - n
                rep.mismatches.append(f"{u}/{t}: counted {n}, acknowledged {lo[(u, t)]}")
            elif n > hi[(u, t)]:
                over = n - hi[(u, t)]
                if u.startswith("soak-id-"):
                    rep.double_counted_with_id += over
                else:
                    rep.double_counted_without_id += over
                rep.mismatches.append(f"{u}/{t}: counted {n}, at most {hi[(u, t)]} allowed")
            elif u.startswith("soak-noid-"):
                rep.ambiguous_counted += n - lo[(u, t)]

    async def reconcile(self) -> Report:
        rep = Report(mode=self.cfg.mode, seconds=self.cfg.seconds)
        users = self.id_users + self.noid_users
        end = time.monotonic() + self.cfg.settle_timeout_s
        async with httpx.AsyncClient(timeout=30.0) as client:
            while True:
                got = await self.counts(client, users)
                self.tally(got, rep)
                if rep.lost == 0 and not rep.mismatches:
                    rep.settled_s = time.monotonic() - self.load_done
                    break
                if time.monotonic() > end:
                    break
                await asyncio.sleep(1.0)
            self.log(f"counts {'matched' if not rep.mismatches else 'still differ'}; settling 2 s")
            await asyncio.sleep(2.0)  # and nothing more arrives afterwards
            self.tally(await self.counts(client, users), rep)
        if rep.lost and self.cluster.redis is not None:
            rep.lost_traced = await asyncio.to_thread(self.trace_lost, rep)
        self.fill(rep)
        return rep

    def trace_lost(self, rep: Report) -> list[str]:
        """For each id of a (user, type) counted short: whether the topic holds it and whether the
        worker applied it (its de-duplication marker in Redis), and when it was acknowledged — which
        tells the part that lost it and the fault it followed."""
        import redis

        from overdrive.store.redis_feature_store import escape
        from overdrive.stream.kafka_history import KafkaSignalHistory

        short = {tuple(m.split(":", 1)[0].split("/")) for m in rep.mismatches if "acknowledged" in m}
        suspects = {i: key for i, key in self.acked_ids.items() if key in short}
        assert self.cluster.broker is not None and self.cluster.redis is not None
        history = KafkaSignalHistory(bootstrap_servers=self.cluster.broker.bootstrap, topic=TOPIC, partitions=4)
        in_topic = {sig.signal_id for batch in history.scan() for sig in batch if sig.signal_id in suspects}
        r = redis.Redis.from_url(self.cluster.redis.url)
        traced = []
        for signal_id, (user, kind) in sorted(suspects.items(), key=lambda kv: self.id_acked_at[kv[0]]):
            applied = bool(r.exists(f"soak:{{u:{escape(user)}}}:seen:{signal_id}"))
            if applied and signal_id in in_topic:
                continue  # counted: another id of the group is the lost one
            at = self.id_acked_at[signal_id]
            before = [w for w in self.windows if w.start - self.t0 <= at + 10.0]  # a fault just after may lose it too
            fault = f"{before[-1].kind} at {before[-1].start - self.t0:.1f}s" if before else "none"
            traced.append(f"{signal_id} {user}/{kind} acknowledged at {at:.1f}s: in the topic "
                          f"{'yes' if signal_id in in_topic else 'NO'}, applied {'yes' if applied else 'NO'}; "
                          f"the last fault up to 10 s after: {fault}")
        r.close()
        return traced

    def fill(self, rep: Report) -> None:
        rep.acked_requests = self.acked_requests
        rep.acked_with_id = len(self.acked_ids)
        rep.repeats_acked = sum(n - 1 for n in self.id_ack_times.values())
        rep.acked_without_id = sum(self.noid_acked.values())
        rep.acked_signals = rep.acked_with_id + rep.acked_without_id
        rep.ambiguous_without_id = sum(self.noid_ambiguous.values())
        rep.unacked_with_id = len(self.unacked_ids)
        windows = [(w.start, w.end or time.monotonic()) for w in self.windows]
        statuses: dict[str, Counter] = defaultdict(Counter)
        lat: dict[str, list[float]] = defaultdict(list)
        lat_quiet: dict[str, list[float]] = defaultdict(list)
        for endpoint, start, end, status, retry_after, err in self.requests:
            inside = any(start <= we and end >= ws for ws, we in windows)
            statuses[endpoint][str(status) if status is not None else "transport"] += 1
            if status is None:
                if inside:
                    rep.transport_errors_inside += 1
                else:
                    rep.transport_errors_outside += 1
                    if len(rep.errors_sample) < 20:
                        rep.errors_sample.append(f"{endpoint} at {start - self.t0:.1f}s: {err}")
                continue
            lat[endpoint].append((end - start) * 1000)
            if 400 <= status < 500 and status != 429 and not (status == 404 and "DELETE" in endpoint) \
                    and not (status == 409 and endpoint == "models/train"):
                rep.unexpected_4xx += 1
                if len(rep.errors_sample) < 20:
                    rep.errors_sample.append(f"{endpoint} at {start - self.t0:.1f}s: {status}")
            if not inside:
                lat_quiet[endpoint].append((end - start) * 1000)
            if status == 503 and retry_after and err == "overloaded":
                rep.shed_503 += 1
            elif status >= 500:
                if inside:
                    rep.http_5xx_inside += 1
                    if not (status == 503 and retry_after):
                        rep.http_5xx_inside_bad += 1
                else:
                    rep.http_5xx_outside += 1
                    if len(rep.errors_sample) < 20:
                        rep.errors_sample.append(f"{endpoint} at {start - self.t0:.1f}s: {status} {err}")
        rep.statuses = {k: dict(v) for k, v in sorted(statuses.items())}
        rep.latency_ms = {k: {"n": len(v), "p50": round(_pct(v, 0.5), 1), "p99": round(_pct(v, 0.99), 1),
                              "p99_outside_faults": round(_pct(lat_quiet[k], 0.99), 1)} for k, v in sorted(lat.items())}
        half = self.cfg.seconds / 2
        for api, samples in sorted(self.rss.items()):
            if not samples:
                continue
            mid = min(samples, key=lambda s: abs(s[0] - half))
            rep.rss_kib[api] = {"start": samples[0][2], "middle": mid[2], "end": samples[-1][2], "max": max(s[2] for s in samples),
                                "restarts": len({s[1] for s in samples}) - 1}
            step = max(1, len(samples) // 10)
            rep.rss_series_mib[api] = [(round(t), kib // 1024) for t, _, kib in samples[::step]] + [(round(samples[-1][0]), samples[-1][2] // 1024)]
            if mid[1] == samples[-1][1] and mid[2]:
                rep.rss_growth_last_half_pct[api] = round(100.0 * (samples[-1][2] - mid[2]) / mid[2], 1)
        rep.windows = [{"kind": w.kind, "detail": w.detail, "start_s": round(w.start - self.t0, 1),
                        "end_s": round((w.end or w.start) - self.t0, 1)} for w in self.windows]
        rep.retrains = dict(self.retrains)


def run(cfg: SoakConfig) -> Report:
    """Start the processes, soak them, stop them; the report (see `Report.ok`)."""
    with contextlib.ExitStack() as stack:
        tmp = cfg.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="overdrive-soak-")))
        cluster = Cluster(cfg, tmp)
        stack.callback(cluster.stop)
        cluster.start()
        return asyncio.run(Soak(cfg, cluster).run())


def render(rep: Report) -> str:
    lines = [
        f"soak, {rep.mode} mode, {rep.seconds / 60:.1f} min ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        (f"  acked: {rep.acked_signals} signals in {rep.acked_requests} requests ({rep.acked_with_id} with id, "
        f"{rep.acked_without_id} without; {rep.repeats_acked} ids acknowledged again on retry)"),
        (f"  counted: {rep.counted}   lost: {rep.lost}   double-counted (with id): {rep.double_counted_with_id}   "
        f"beyond the ambiguous allowance (without id): {rep.double_counted_without_id}"),
        (f"  ambiguous (without id, answer lost, retried): {rep.ambiguous_without_id} attempts, {rep.ambiguous_counted} counted once more"
        f"   with id never acknowledged: {rep.unacked_with_id}"),
        ("  counts matched " + (f"{rep.settled_s:.0f} s after the load ended (the service's backlog)" if rep.settled_s is not None
                                 else "never, within the settle timeout")),
        (f"  5xx outside fault windows: {rep.http_5xx_outside}   inside: {rep.http_5xx_inside} "
        f"(not a 503 with Retry-After: {rep.http_5xx_inside_bad})   shed 503 (overloaded): {rep.shed_503}"
        f"   unexpected 4xx: {rep.unexpected_4xx}"),
        f"  transport errors outside fault windows: {rep.transport_errors_outside}   inside: {rep.transport_errors_inside}",
        f"  retrains: {rep.retrains}",
        "  faults (window: injection until every API is ready again, plus a grace):",
        *[f"    {w['kind']:<15} {w['detail']:<18} {w['start_s']:7.1f}s .. {w['end_s']:7.1f}s" for w in rep.windows],
        "  latency ms (answered requests):  n  P50  P99  P99 outside fault windows",
        *[f"    {k:<24} {v['n']:>7} {v['p50']:>7} {v['p99']:>8} {v['p99_outside_faults']:>8}" for k, v in rep.latency_ms.items()],
        "  statuses:",
        *[f"    {k:<24} {v}" for k, v in rep.statuses.items()],
        "  RSS MiB (start / middle / end / max; restarts):",
        *[f"    {k}: {v['start'] / 1024:.0f} / {v['middle'] / 1024:.0f} / {v['end'] / 1024:.0f} / {v['max'] / 1024:.0f}; "
          f"{v['restarts']}; growth over the last half: {rep.rss_growth_last_half_pct.get(k, 'n/a (restarted)')} %"
          for k, v in rep.rss_kib.items()],
        *[f"    {k} over time (s: MiB): " + ", ".join(f"{t}: {m}" for t, m in series) for k, series in rep.rss_series_mib.items()],
    ]
    if rep.errors_sample:
        lines += ["  errors outside fault windows (first 20):", *[f"    {e}" for e in rep.errors_sample]]
    if rep.mismatches:
        lines += ["  mismatches (first 20):", *[f"    {m}" for m in rep.mismatches[:20]]]
    if rep.lost_traced:
        lines += ["  lost, traced (signals with an id):", *[f"    {m}" for m in rep.lost_traced]]
    lines.append(f"  verdict: {'OK' if rep.ok() else 'FAILED'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--mode", choices=["embedded", "scaled"], default="embedded")
    ap.add_argument("--api-kills", type=int, default=3)
    ap.add_argument("--worker-kills", type=int, default=1, help="scaled mode")
    ap.add_argument("--redis-restarts", type=int, default=1, help="scaled mode")
    ap.add_argument("--broker-stalls", type=int, default=1, help="scaled mode")
    ap.add_argument("--settle-timeout", type=float, default=600.0, help="seconds a signal may stay uncounted after the load")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--json", type=Path, help="also write the report here")
    ap.add_argument("--workdir", type=Path, help="keep data and logs here (default: a temporary folder)")
    args = ap.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    rep = run(SoakConfig(mode=args.mode, seconds=args.minutes * 60, api_kills=args.api_kills, worker_kills=args.worker_kills,
                         redis_restarts=args.redis_restarts, broker_stalls=args.broker_stalls,
                         settle_timeout_s=args.settle_timeout, seed=args.seed, workdir=args.workdir))
    print(render(rep))
    if args.json:
        args.json.write_text(json.dumps(rep.__dict__, indent=2, default=str))
    raise SystemExit(0 if rep.ok() else 1)


if __name__ == "__main__":
    main()
