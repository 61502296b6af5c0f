"""Signals per second into `POST /signals/batch` from one process: the client's buffered sender
against a hand-written httpx loop, in the same run, against a real server process.

- `raw httpx`: the loop a user would write — signals already carrying ids, batches of
  `--batch-size` encoded with orjson and posted one after another over one keep-alive connection;
- `SignalSender`: `client.signal_sender()` fed one signal at a time (`send` stamps each with its
  id, batches, and posts `--in-flight` batches at once on background threads, with retries).

The two alternate for `--rounds` rounds, each on signals of its own (fresh ids, so nothing is a
duplicate), and the server's log must hold every signal sent. Besides the rate, the CPU each
side used (cores, from /proc) shows which was the limit: each side's CPU per signal gives the
rate it alone could reach on one core. The server's includes applying every signal to live state
(the in-process processor), not only storing it. The server is the embedded default with a signal
buffer large enough that it never answers 429 here (a 429 would be retried by the sender and
would stop the raw loop).

    python -m benchmarks.bench_client [--signals 200000] [--batch-size 5000] [--in-flight 2] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from benchmarks.cpu_use import cpu_meter
from overdrive.evaluation.server_process import ServerProcess
from overdrive_client import Client

TARGET = 50_000  # signals/s (issue 19)
KINDS = ["view", "like", "click", "skip", "share", "dwell"]


def signals(n: int, tag: str, *, with_ids: bool) -> list[dict]:
    out = [{"user_id": f"u{i % 5000}", "signal_type": KINDS[i % len(KINDS)], "content_id": f"i{(i * 7) % 20000}",
            "duration": 3.0} for i in range(n)]
    if with_ids:
        for i, s in enumerate(out):
            s["signal_id"] = f"{tag}-{i}"
    return out


def raw_loop(url: str, batch: list[dict], batch_size: int) -> int:
    with httpx.Client(base_url=url, timeout=60.0) as http:
        for start in range(0, len(batch), batch_size):
            body = orjson.dumps({"signals": batch[start:start + batch_size]})
            r = http.post("/signals/batch", content=body, headers={"content-type": "application/json"})
            r.raise_for_status()
    return len(batch)


def sender_loop(url: str, batch: list[dict], batch_size: int, in_flight: int) -> int:
    with Client(url, timeout=60.0) as od, od.signal_sender(batch_size=batch_size, max_in_flight=in_flight,
                                                            max_queued=in_flight) as sender:
        send = sender.send
        for signal in batch:
            send(signal)  # type: ignore[arg-type]
    assert sender.stats.accepted == len(batch), sender.stats
    return sender.stats.acknowledged


def measure(name: str, run, server: ServerProcess) -> dict:  # noqa: ANN001
    meter = cpu_meter({"client": os.getpid(), "server": server.proc.pid})  # type: ignore[union-attr]
    started = time.perf_counter()
    sent = run()
    seconds = time.perf_counter() - started
    cores = meter()
    return {"name": name, "signals": sent, "seconds": round(seconds, 3), "per_s": round(sent / seconds),
            "client_cores": round(cores.get("client", float("nan")), 2),
            "server_cores": round(cores.get("server", float("nan")), 2),
            "machine_cores": round(cores.get("machine", float("nan")), 2),
            "client_us_per_signal": round(cores.get("client", float("nan")) * seconds / sent * 1e6, 2),
            "server_us_per_signal": round(cores.get("server", float("nan")) * seconds / sent * 1e6, 1)}


def run(args: argparse.Namespace) -> dict:
    results: dict = {"signals_per_run": args.signals, "batch_size": args.batch_size, "in_flight": args.in_flight,
                     "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-client-") as tmp:
        env = {"OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
               "OVERDRIVE_CONTENT_FEATURES": "false", "MODEL_CACHE_DIR": str(Path(tmp) / "models"),
               "SIGNAL_BUFFER_SIZE": "2000000"}
        with ServerProcess(data_dir=Path(tmp) / "data", env=env, log_path=Path(tmp) / "server.log") as server:
            warm = signals(20_000, "warm", with_ids=True)
            raw_loop(server.url, warm, args.batch_size)  # the server's first batches (imports, caches)
            total = len(warm)
            for r in range(args.rounds):
                order = ["raw", "sender"] if r % 2 == 0 else ["sender", "raw"]
                for kind in order:
                    if kind == "raw":
                        batch = signals(args.signals, f"raw{r}", with_ids=True)
                        row = measure("raw httpx", lambda b=batch: raw_loop(server.url, b, args.batch_size), server)
                    else:
                        batch = signals(args.signals, f"snd{r}", with_ids=False)
                        row = measure("SignalSender", lambda b=batch: sender_loop(server.url, b, args.batch_size,
                                                                                   args.in_flight), server)
                    total += row["signals"]
                    results["runs"].append(row)
            with Client(server.url) as od:
                deadline = time.monotonic() + 120
                while (logged := od.performance()["store"]["signals"]) < total and time.monotonic() < deadline:
                    time.sleep(0.2)
            results["logged"], results["sent"] = logged, total
    for name in ("raw httpx", "SignalSender"):
        rows = [r for r in results["runs"] if r["name"] == name]
        results[name] = {"median_per_s": round(statistics.median(r["per_s"] for r in rows)),
                         "client_us_per_signal": statistics.median(r["client_us_per_signal"] for r in rows),
                         "server_us_per_signal": statistics.median(r["server_us_per_signal"] for r in rows)}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--signals", type=int, default=200_000, help="signals per run")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--in-flight", type=int, default=2, help="the sender's batches in flight")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{args.signals:,} signals per run, batches of {args.batch_size}, {results['cpus']} CPUs; "
              f"client and server on the same machine")
        print(f"{'run':<14}{'signals/s':>11}{'client cores':>14}{'server cores':>14}{'machine':>9}"
              f"{'client µs/signal':>18}{'server µs/signal':>18}")
        for r in results["runs"]:
            print(f"{r['name']:<14}{r['per_s']:>11,}{r['client_cores']:>14.2f}{r['server_cores']:>14.2f}"
                  f"{r['machine_cores']:>9.2f}{r['client_us_per_signal']:>18.2f}{r['server_us_per_signal']:>18.1f}")
        for name in ("raw httpx", "SignalSender"):
            s = results[name]
            print(f"{name}: median {s['median_per_s']:,} signals/s; CPU per signal: client {s['client_us_per_signal']} µs "
                  f"(~{1e6 / s['client_us_per_signal']:,.0f} signals/s on one core), server {s['server_us_per_signal']} µs "
                  f"(~{1e6 / s['server_us_per_signal']:,.0f} signals/s on one core)")
        met = results["SignalSender"]["median_per_s"] >= TARGET
        print(f"target >= {TARGET:,} signals/s with the sender: {'met' if met else 'NOT met'}; "
              f"server log holds {results['logged']:,} of {results['sent']:,} signals sent")
    return 0 if results["logged"] == results["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
