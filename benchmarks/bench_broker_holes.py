"""Does a consumer of the broker step over records that are written later? Plain, and with `OffsetGaps`.

Tansu's memory:// engine raises a partition's high watermark before it writes the batch, and a
fetch returns the batches written below the watermark. With several producers on one partition and
a busy host (the scaled soak's), a later batch can be fetched first. This starts a private Tansu,
`--producers` idempotent producer processes and `--hogs` busy-looping processes for `--seconds`,
and reads all four partitions live twice over: a plain consumer (position = last offset + 1, as the
worker was) and one that holds a partition back at a hole and seeks to it (`OffsetGaps`, as the
worker and the replicas' tail now do). Then a fresh re-read of the topic says which offsets each
missed. Prints: records, offsets the plain consumer jumped over that the re-read holds (records it
would have lost), the same for the guarded one, and the holes it waited for.

    python -m benchmarks.bench_broker_holes [--seconds 30] [--producers 4] [--hogs 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from overdrive.stream.kafka_gaps import OffsetGaps
from tests.real_servers import Tansu

TOPIC, PARTITIONS = "holes", 4


def _produce(bootstrap: str, seconds: float, tag: str) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 1})
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        try:
            p.produce(TOPIC, key=f"u{i % 50}".encode(), value=f"{tag}-{i}".encode())
            i += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0.001)
    p.flush(30)


def _hog(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _consumer(bootstrap: str, group: str) -> Any:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    return c


def _read_live(bootstrap: str, until: float, guarded: bool, out: dict) -> None:
    """Every offset taken, per the consumer's rule; `out` gets them and the holes waited for."""
    c = _consumer(bootstrap, "guarded" if guarded else "plain")
    gaps = OffsetGaps()
    for p in range(PARTITIONS):
        gaps.expect(p, 0)
    taken: set[tuple[int, int]] = set()
    waited = 0
    while time.monotonic() < until:
        held: set[int] = set()
        for m in c.consume(500, 0.05):
            if m.error() is not None or m.partition() in held:
                continue
            if guarded and not gaps.admit(m.partition(), m.offset()):
                held.add(m.partition())
                continue
            taken.add((m.partition(), m.offset()))
        for p in held:
            waited += 1
            c.seek(TopicPartition(TOPIC, p, gaps.expected(p)))
    c.close()
    out.update(taken=taken, waited=waited, stepped_over=gaps.skipped)


def _missed(taken: set[tuple[int, int]], have: set[tuple[int, int]]) -> int:
    """Offsets the topic holds below the highest each partition's consumer took, that it never took."""
    top: dict[int, int] = {}
    for p, o in taken:
        top[p] = max(o, top.get(p, -1))
    return sum(1 for p, o in have if o <= top.get(p, -1) and (p, o) not in taken)


def run_round(seconds: float, producers: int, hogs: int) -> dict[str, int]:
    broker = Tansu().start()
    try:
        broker.create_topic(TOPIC, partitions=PARTITIONS)
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_produce, args=(broker.bootstrap, seconds, f"p{k}")) for k in range(producers)]
        procs += [ctx.Process(target=_hog, args=(seconds,)) for _ in range(hogs)]
        until = time.monotonic() + seconds + 5.0
        plain: dict = {}
        guarded: dict = {}
        readers = [threading.Thread(target=_read_live, args=(broker.bootstrap, until, False, plain)),
                   threading.Thread(target=_read_live, args=(broker.bootstrap, until, True, guarded))]
        for x in [*readers, *procs]:
            x.start()
        for x in [*procs, *readers]:
            x.join()
        c = _consumer(broker.bootstrap, "reread")
        have: set[tuple[int, int]] = set()
        quiet = time.monotonic()
        while time.monotonic() - quiet < 3.0:
            got = [m for m in c.consume(1000, 0.2) if m.error() is None]
            if got:
                quiet = time.monotonic()
            have.update((m.partition(), m.offset()) for m in got)
        c.close()
        return {"records": len(have), "plain_missed": _missed(plain["taken"], have),
                "guarded_missed": _missed(guarded["taken"], have), "guarded_waited": guarded["waited"],
                "guarded_stepped_over": guarded["stepped_over"]}
    finally:
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for n in range(args.rounds):
        r = run_round(args.seconds, args.producers, args.hogs)
        print(f"round {n + 1}: {r['records']} records; plain consumer missed {r['plain_missed']}; "
              f"guarded missed {r['guarded_missed']} (holes waited for: {r['guarded_waited']}, "
              f"stepped over after the wait: {r['guarded_stepped_over']})", flush=True)


if __name__ == "__main__":
    main()
