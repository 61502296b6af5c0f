"""A scale simulation (issue 20, item 6): what one signal and one ranking cost in the scaled mode,
measured on this machine, and what that makes of a deployment's size.

    python -m benchmarks.scale_simulation [--replicas 1,2,4] [--signals 1500] [--rankings 200] [--json]
        [--signals-per-day 100e6] [--rankings-per-day 100e6] [--catalog 10e6] [--people 10e6] [--deployed-replicas 100]

Measured: a 3-master Redis Cluster and a Tansu broker with a 12-partition topic, one worker, one
trainer (`python -m overdrive.trainer`, so the replicas rank with a collaborative model as deployed)
and 1, 2, then 4 API replicas (each phase on a fresh key prefix and topic). Every replica gets the
same load — `--signals` single signals (`POST /signals/process`, the device path) and then
`--rankings` rankings of 100 candidates (`POST /rank/for-you/enhanced`), two connections each — so
that the cost *per operation* can be compared across replica counts: it must stay flat for the
design to scale out. Per operation: the Redis commands it caused (INFO commandstats over every
master, the idle background rate subtracted), Redis bytes in and out, Redis CPU, and the CPU of
the API replica, the worker and the broker (from /proc). Redis memory per catalog item and per
person comes from the masters' `used_memory` before and after.

Extrapolated: the daily volumes given, at their average rate and at `--peak` times it, to Redis
commands and CPU (masters needed at `--master-busy` of one core each, Redis being single-threaded),
network, API and worker cores, broker bytes and Redis memory. It is arithmetic on the measured
costs; what it leaves out is printed with it (content features are off: embeddings are computed
per replica and cost no Redis traffic; the trainer's cost is per model version, not per request).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import redis

from benchmarks.cpu_use import busy_seconds
from overdrive.domain.codec import encode_signal
from overdrive.domain.types import Signal
from overdrive.evaluation.server_process import ServerProcess
from tests import real_servers as services

PARTITIONS = 12
SIGNAL_TYPES = ("view", "click", "like", "share", "skip")


@dataclass
class RedisSample:
    calls: int
    bytes_in: int
    bytes_out: int
    cpu_s: float
    memory: int

    def minus(self, other: RedisSample) -> RedisSample:
        return RedisSample(self.calls - other.calls, self.bytes_in - other.bytes_in, self.bytes_out - other.bytes_out,
                           self.cpu_s - other.cpu_s, self.memory - other.memory)


@dataclass
class OperationCost:
    """What one operation cost, averaged over a phase."""

    operations: int
    redis_commands: float
    redis_bytes_in: float
    redis_bytes_out: float
    redis_cpu_us: float
    api_cpu_us: float
    api_cpu_us_per_replica: list[float]
    worker_cpu_us: float
    broker_cpu_us: float
    wall_s: float


@dataclass
class Phase:
    replicas: int
    signal: OperationCost
    ranking: OperationCost
    redis_bytes_per_item: float
    redis_bytes_per_person: float
    counted: int
    sent: int
    topic_bytes_per_signal: float
    idle_commands_per_s: float


def redis_sample(masters: Sequence[redis.Redis]) -> RedisSample:
    calls = bytes_in = bytes_out = memory = 0
    cpu = 0.0
    for m in masters:
        stats = m.info("commandstats")
        calls += sum(int(v["calls"]) for v in stats.values())
        info = m.info()
        bytes_in += int(info["total_net_input_bytes"])
        bytes_out += int(info["total_net_output_bytes"])
        cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        memory += int(info["used_memory"])
    return RedisSample(calls, bytes_in, bytes_out, cpu, memory)


@dataclass
class Idle:
    """What Redis and each process spend per second with no load (the replicas' and the worker's
    background work, the cluster's own cron and bus): subtracted from a phase's totals."""

    commands: float
    redis_cpu: float
    cpu: dict[str, float]


def _idle(masters: Sequence[redis.Redis], processes: Mapping[str, int], seconds: float = 5.0) -> Idle:
    before, cpu_before = redis_sample(masters), busy_seconds(processes)
    time.sleep(seconds)
    delta, cpu_after = redis_sample(masters).minus(before), busy_seconds(processes)
    return Idle(commands=max(0.0, delta.calls / seconds - 2 * len(masters) / seconds),  # less this sampling's INFO calls
                redis_cpu=delta.cpu_s / seconds, cpu={k: (cpu_after[k] - cpu_before[k]) / seconds for k in processes})


def settle(masters: Sequence[redis.Redis], idle: Idle, processes: Mapping[str, int], timeout_s: float = 180.0) -> None:
    """Wait until Redis sees no more than its idle background traffic (the worker has caught up) and
    every process is back to about its idle CPU (the replicas' learners have caught up with the
    topic): two calm seconds in a row. Past `timeout_s`, say on stderr what was still busy and go on:
    the figures after it then include that work."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    last, cpu_last = redis_sample(masters).calls, busy_seconds(processes)
    busy: dict[str, float] = {}
    while quiet < 2:
        if time.monotonic() > deadline:
            print(f"settle: not calm after {timeout_s:.0f} s; last second, above idle: {busy}", file=sys.stderr)
            return
        time.sleep(1.0)
        now, cpu_now = redis_sample(masters).calls, busy_seconds(processes)
        busy = {k: round(cpu_now[k] - cpu_last[k], 3) for k in processes
                if cpu_now[k] - cpu_last[k] > 1.5 * idle.cpu[k] + 0.05}  # a noisy host's idle varies by half
        if now - last > 2 * idle.commands + 10:
            busy["redis_commands"] = now - last
        quiet = quiet + 1 if not busy else 0
        last, cpu_last = now, cpu_now


def _signal(user: str, item: str, rng: random.Random) -> dict:
    return {"user_id": user, "signal_type": rng.choice(SIGNAL_TYPES), "content_id": item,
            "signal_id": uuid.uuid4().hex, "duration": round(rng.uniform(1, 60), 1)}


def _drive(urls: Sequence[str], jobs: Mapping[str, list[tuple[str, dict]]], connections: int) -> None:
    """Post each replica's jobs (path, body) over `connections` keep-alive connections of its own."""
    def lane(url: str, part: list[tuple[str, dict]]) -> None:
        with httpx.Client(base_url=url, timeout=60.0) as http:
            for path, body in part:
                r = http.post(path, json=body)
                r.raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(urls) * connections) as pool:
        futures = [pool.submit(lane, url, jobs[url][k::connections]) for url in urls for k in range(connections)]
        for f in futures:
            f.result()


def _cost(ops: int, redis_delta: RedisSample, idle: Idle, wall_s: float, cpu_s: Mapping[str, float],
          api_names: Sequence[str]) -> OperationCost:
    """Per operation, from a phase's totals less the idle background over its wall time: `ops`
    operations spread evenly over the API replicas."""
    per = 1e6 / ops  # seconds in total -> µs per operation
    busy = {k: max(0.0, v - idle.cpu[k] * wall_s) for k, v in cpu_s.items()}
    return OperationCost(
        operations=ops, redis_commands=round(max(0.0, redis_delta.calls - idle.commands * wall_s) / ops, 2),
        redis_bytes_in=round(redis_delta.bytes_in / ops, 1), redis_bytes_out=round(redis_delta.bytes_out / ops, 1),
        redis_cpu_us=round(max(0.0, redis_delta.cpu_s - idle.redis_cpu * wall_s) * per, 1),
        api_cpu_us=round(sum(busy[name] for name in api_names) * per, 1),
        api_cpu_us_per_replica=[round(busy[name] * per * len(api_names), 1) for name in api_names],
        worker_cpu_us=round(busy["worker"] * per, 1), broker_cpu_us=round(busy["broker"] * per, 1),
        wall_s=round(wall_s, 2))


def run_phase(cluster: services.RedisCluster, broker: services.Tansu, tmp: Path, replicas: int, *, signals: int,
              rankings: int, items: int, people: int, seed: int, model: bool = True, settle_s: float = 180.0) -> Phase:
    """One phase with `replicas` API replicas; `model=False`: no trainer, so no collaborative model
    is served and folded into (what the learners' share of a signal's cost is told from);
    `settle_s`: the longest wait for the processes to go quiet after each step."""
    rng = random.Random(seed)
    prefix = services.unique_prefix(f"scale{replicas}")
    topic = f"overdrive-scale-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=PARTITIONS)
    masters = [redis.Redis(port=n.port) for n in cluster.nodes]
    env = {"REDIS_URL": cluster.url, "OVERDRIVE_REDIS_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
           "OVERDRIVE_KAFKA_TOPIC": topic, "OVERDRIVE_KAFKA_PARTITIONS": str(PARTITIONS),
           "OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS": "6000", "OVERDRIVE_TRAINER": "external",
           "OVERDRIVE_MODEL_FOLLOW_SECONDS": "1", "MODEL_CACHE_DIR": str(tmp / f"models-{replicas}"),
           "OVERDRIVE_CONTENT_FEATURES": "false", "OVERDRIVE_TRAIN_ON_START": "false",
           "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_LOG_LEVEL": "warning",
           "OVERDRIVE_COMPILED_MODELS_DIR": str(services.COMPILED_MODELS_DIR)}
    with ExitStack() as stack:
        stack.callback(services.delete_prefix, cluster.url, prefix)
        apis = [stack.enter_context(ServerProcess(data_dir=tmp / f"r{replicas}-api{k}", env=env)) for k in range(replicas)]
        worker = services.WorkerProcess(env=env, log_path=tmp / f"r{replicas}-worker.log").start()
        stack.callback(worker.kill)
        if model:
            trainer = services.WorkerProcess(env=env, log_path=tmp / f"r{replicas}-trainer.log",
                                             module="overdrive.trainer").start()
            stack.callback(trainer.kill)
        urls = [a.url for a in apis]
        item_ids = [f"item-{n}" for n in range(items)]
        users = [f"person-{n}" for n in range(people)]

        processes = {**{f"api{k}": a.proc.pid for k, a in enumerate(apis)}, "worker": worker.proc.pid,  # type: ignore[union-attr]
                     "broker": broker.proc.pid}  # type: ignore[union-attr]
        api_names = [f"api{k}" for k in range(replicas)]
        idle = _idle(masters, processes)
        memory_before_items = redis_sample(masters).memory
        with httpx.Client(base_url=urls[0], timeout=120.0) as http:
            for start in range(0, items, 500):
                http.post("/items/batch", json={"items": [
                    {"id": i, "text": f"item {i} about topic {n % 20}", "tags": [f"t{n % 20}", f"g{n % 7}"],
                     "author_id": f"author-{n % 50}"} for n, i in enumerate(item_ids[start:start + 500], start)]}).raise_for_status()
            settle(masters, idle, processes, settle_s)
            memory_items = redis_sample(masters).memory
            # History to train on, so that the replicas rank with the collaborative model as deployed.
            history = [_signal(rng.choice(users), rng.choice(item_ids), rng) for _ in range(max(4 * people, 2000))]
            for start in range(0, len(history), 1000):
                http.post("/signals/batch", json={"signals": history[start:start + 1000]}).raise_for_status()
        settle(masters, idle, processes, settle_s)
        if model:
            with httpx.Client(base_url=urls[0], timeout=60.0) as http:
                http.post("/models/train").raise_for_status()
            _wait_for_model(urls, timeout_s=300.0)

        idle = _idle(masters, processes)

        # Signals: every replica the same number, for people drawn from everyone.
        jobs = {url: [("/signals/process", _signal(rng.choice(users), rng.choice(item_ids), rng)) for _ in range(signals)]
                for url in urls}
        sent = [body for part in jobs.values() for _, body in part]
        before, cpu_before, started = redis_sample(masters), busy_seconds(processes), time.monotonic()
        _drive(urls, jobs, connections=2)
        settle(masters, idle, processes, settle_s)
        wall = time.monotonic() - started
        delta, cpu_after = redis_sample(masters).minus(before), busy_seconds(processes)
        signal_cost = _cost(len(sent), delta, idle, wall, {k: cpu_after[k] - cpu_before[k] for k in processes}, api_names)
        counted = _counted(urls[0], len(history) + len(sent), people)

        # Rankings: 100 candidates each, every replica the same number.
        jobs = {url: [("/rank/for-you/enhanced", {"user_id": rng.choice(users), "limit": 20,
                                                    "candidate_items": [{"id": i} for i in rng.sample(item_ids, 100)]})
                      for _ in range(rankings)] for url in urls}
        before, cpu_before, started = redis_sample(masters), busy_seconds(processes), time.monotonic()
        _drive(urls, jobs, connections=2)
        settle(masters, idle, processes, settle_s)
        wall = time.monotonic() - started
        delta, cpu_after = redis_sample(masters).minus(before), busy_seconds(processes)
        ranking_cost = _cost(replicas * rankings, delta, idle, wall, {k: cpu_after[k] - cpu_before[k] for k in processes},
                             api_names)
        person_bytes = (redis_sample(masters).memory - memory_items) / max(1, people)
    topic_bytes = sum(len(encode_signal(Signal(user_id=s["user_id"], signal_type=s["signal_type"], content_id=s["content_id"],
                                               timestamp=time.time(), duration=s["duration"], signal_id=s["signal_id"])))
                      for s in sent[:1000]) / min(1000, len(sent))
    return Phase(replicas=replicas, signal=signal_cost, ranking=ranking_cost,
                 redis_bytes_per_item=round((memory_items - memory_before_items) / items, 1),
                 redis_bytes_per_person=round(person_bytes, 1), counted=counted, sent=len(history) + len(sent),
                 topic_bytes_per_signal=round(topic_bytes, 1), idle_commands_per_s=round(idle.commands, 1))


def _wait_for_model(urls: Sequence[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for url in urls:
        while True:
            status = httpx.get(f"{url}/models/status", timeout=10.0).json()
            if status["collaborative"]["serving"] is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} serves no collaborative model after {timeout_s:.0f} s: {status}")
            time.sleep(0.5)


def _counted(url: str, expected: int, people: int) -> int:
    """Every person's signal count, summed (after the measured window: these reads are not costed)."""
    with httpx.Client(base_url=url, timeout=30.0) as http:
        deadline = time.monotonic() + 60.0
        while True:
            total = sum(http.get(f"/analytics/user/person-{n}").json()["total_signals"] for n in range(people))
            if total >= expected or time.monotonic() > deadline:
                return total
            time.sleep(1.0)


@dataclass
class Deployment:
    signals_per_day: float = 100e6
    rankings_per_day: float = 100e6
    catalog: float = 10e6
    people: float = 10e6
    replicas: int = 100
    peak: float = 3.0  # peak rate / average rate
    master_busy: float = 0.5  # how busy one Redis master (one core) may run
    retention_days: float = 7.0  # the topic's retention


def per_replica_fit(replicas: Sequence[int], costs: Sequence[float]) -> tuple[float, float]:
    """(fixed, per replica) of a per-operation cost summed over every replica, cost = fixed + R × per
    replica, by least squares over the phases: what grows with R is work every replica repeats
    (each reads the whole topic for its learners). One phase cannot tell them apart: all fixed."""
    if len(set(replicas)) < 2:
        return (sum(costs) / len(costs), 0.0)
    mean_r, mean_c = sum(replicas) / len(replicas), sum(costs) / len(costs)
    slope = (sum((r - mean_r) * (c - mean_c) for r, c in zip(replicas, costs, strict=True))
             / sum((r - mean_r) ** 2 for r in replicas))
    slope = max(0.0, slope)
    return max(0.0, mean_c - slope * mean_r), slope


def extrapolate(phases: Sequence[Phase], d: Deployment) -> dict[str, float]:
    """The deployment's needs at its peak rate, from the costs per operation measured in the phases:
    Redis and worker costs as measured with the most replicas; a ranking's API CPU as the phases'
    mean; a signal's API and broker CPU as fixed + R × per replica (`per_replica_fit`) at the
    deployment's R."""
    sig, rank = d.signals_per_day / 86400 * d.peak, d.rankings_per_day / 86400 * d.peak
    last = phases[-1]
    s, r = last.signal, last.ranking
    counts = [ph.replicas for ph in phases]

    def at_scale(costs: list[float]) -> float:
        fixed, each = per_replica_fit(counts, costs)
        return fixed + d.replicas * each

    api_signal = at_scale([ph.signal.api_cpu_us for ph in phases])
    api_ranking = sum(ph.ranking.api_cpu_us for ph in phases) / len(phases)  # a ranking is one replica's work
    broker_signal = at_scale([ph.signal.broker_cpu_us for ph in phases])
    redis_cores = (sig * s.redis_cpu_us + rank * r.redis_cpu_us) / 1e6
    api_cores = (sig * api_signal + rank * api_ranking) / 1e6
    return {
        "signals_per_s_peak": round(sig, 1),
        "rankings_per_s_peak": round(rank, 1),
        "redis_commands_per_s": round(sig * s.redis_commands + rank * r.redis_commands),
        "redis_network_mb_per_s": round((sig * (s.redis_bytes_in + s.redis_bytes_out)
                                         + rank * (r.redis_bytes_in + r.redis_bytes_out)) / 1e6, 1),
        "redis_cores": round(redis_cores, 2),
        "redis_masters_needed": max(1, -(-redis_cores // d.master_busy)),
        "redis_memory_gb": round((d.catalog * last.redis_bytes_per_item + d.people * last.redis_bytes_per_person) / 1e9, 1),
        "api_cpu_us_per_signal_at_scale": round(api_signal, 1),
        "api_cpu_us_per_ranking_at_scale": round(api_ranking, 1),
        "api_cores": round(api_cores, 1),
        "api_cores_per_replica": round(api_cores / d.replicas, 2),
        "api_cores_per_replica_for_the_topic": round(sig * per_replica_fit(counts, [ph.signal.api_cpu_us for ph in phases])[1] / 1e6, 2),
        "worker_cores": round(sig * s.worker_cpu_us / 1e6, 2),
        "broker_cores": round(sig * broker_signal / 1e6, 2),
        "topic_mb_per_s_in": round(sig * last.topic_bytes_per_signal / 1e6, 2),
        "topic_gb_retained": round(d.signals_per_day * d.retention_days * last.topic_bytes_per_signal / 1e9, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_simulation", description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", default="1,2,4", help="API replica counts, one phase each")
    p.add_argument("--signals", type=int, default=1500, help="single signals per replica per phase")
    p.add_argument("--rankings", type=int, default=200, help="rankings per replica per phase")
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--people", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-model", action="store_true", help="no trainer: the replicas serve no collaborative model")
    for name, default in (("signals-per-day", 100e6), ("rankings-per-day", 100e6), ("catalog", 10e6), ("people-total", 10e6)):
        p.add_argument(f"--{name}", type=float, default=default)
    p.add_argument("--deployed-replicas", type=int, default=100)
    p.add_argument("--peak", type=float, default=3.0, help="peak rate / average rate")
    p.add_argument("--master-busy", type=float, default=0.5, help="how busy one Redis master (one core) may run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    for why in (services.redis_server_missing(), services.tansu_missing()):
        if why:
            sys.exit(f"scale_simulation: {why}")
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="overdrive-scale-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        cluster = services.RedisCluster().start()
        stack.callback(cluster.stop)
        broker = services.Tansu(log_dir=tmp).start()
        stack.callback(broker.stop)
        for n in (int(x) for x in args.replicas.split(",")):
            phases.append(run_phase(cluster, broker, tmp, n, signals=args.signals, rankings=args.rankings,
                                    items=args.items, people=args.people, seed=args.seed + n,
                                    model=not args.no_model))
            if not args.json:
                print(_phase_line(phases[-1]), flush=True)
    deployment = Deployment(signals_per_day=args.signals_per_day, rankings_per_day=args.rankings_per_day,
                            catalog=args.catalog, people=args.people_total, replicas=args.deployed_replicas, peak=args.peak,
                            master_busy=args.master_busy)
    needs = extrapolate(phases, deployment)
    if args.json:
        print(json.dumps({"phases": [asdict(ph) for ph in phases], "deployment": asdict(deployment), "needs": needs}, indent=2))
        return 0
    print(_flatness(phases))
    print(f"\nextrapolated to {asdict(deployment)}:")
    for k, v in needs.items():
        print(f"  {k:<26} {v:,}")
    print("  (content features off: embeddings are per replica and cost no Redis traffic; the trainer's cost is per "
          "model version; Redis memory per person after ~"
          f"{phases[-1].sent / max(1, args.people):.0f} signals each, per item with text, two tags and an author)")
    return 0


def _phase_line(ph: Phase) -> str:
    s, r = ph.signal, ph.ranking
    return (f"{ph.replicas} replica(s): signal {s.redis_commands} Redis commands, {s.redis_bytes_in:.0f} B in / "
            f"{s.redis_bytes_out:.0f} B out, Redis CPU {s.redis_cpu_us} µs, API {s.api_cpu_us} µs "
            f"(per replica {s.api_cpu_us_per_replica}), worker {s.worker_cpu_us} µs, broker {s.broker_cpu_us} µs | "
            f"ranking {r.redis_commands} commands, {r.redis_bytes_in:.0f} B in / {r.redis_bytes_out:.0f} B out, "
            f"Redis CPU {r.redis_cpu_us} µs, API {r.api_cpu_us} µs (per replica {r.api_cpu_us_per_replica}) | "
            f"Redis memory {ph.redis_bytes_per_item:.0f} B/item, {ph.redis_bytes_per_person:.0f} B/person | "
            f"counted {ph.counted} of {ph.sent} signals; idle {ph.idle_commands_per_s} commands/s")


def _flatness(phases: Sequence[Phase]) -> str:
    first, last = phases[0], phases[-1]
    counts = [ph.replicas for ph in phases]

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}" if a else "n/a"

    def fit(costs: list[float]) -> str:
        fixed, each = per_replica_fit(counts, costs)
        return f"{fixed:.0f} + R × {each:.0f} µs"

    return (f"\nper operation at {last.replicas} replicas / at {first.replicas}: "
            f"signal: Redis commands {ratio(first.signal.redis_commands, last.signal.redis_commands)}, "
            f"Redis CPU {ratio(first.signal.redis_cpu_us, last.signal.redis_cpu_us)}, "
            f"API CPU {ratio(first.signal.api_cpu_us, last.signal.api_cpu_us)}; "
            f"ranking: Redis commands {ratio(first.ranking.redis_commands, last.ranking.redis_commands)}, "
            f"Redis CPU {ratio(first.ranking.redis_cpu_us, last.ranking.redis_cpu_us)}, "
            f"API CPU {ratio(first.ranking.api_cpu_us, last.ranking.api_cpu_us)}\n"
            f"API CPU per signal, all replicas together, fitted over R: {fit([p.signal.api_cpu_us for p in phases])}; "
            f"broker per signal "
            f"{fit([p.signal.broker_cpu_us for p in phases])}")


if __name__ == "__main__":
    sys.exit(main())
