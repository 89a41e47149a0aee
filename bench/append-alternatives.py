"""`npm run bench:alternatives`: ways for 8 processes to share one durable buffer, measured side by side on this
machine (docs/buffer.md, "Appending from several processes" says which was kept and why).

Every alternative runs 1 and 8 processes appending ~100-byte rows as fast as they can for WINDOW_S seconds, in
ROUNDS rounds whose order rotates, next to raw write(4 KiB)+fdatasync windows (1 process; 8 processes on 8
files): the disk's limits at that moment. The appenders are Python processes for every alternative alike.

  busy-handler    direct commits; SQLite's busy handler waits for the write lock (sleeps 1, 2, 5 ... 100 ms)
  jittered-retry  direct commits; no busy handler, retry after a random 0.05 .. 5 ms (the agent's direct path)
  fair-lock       direct commits taken in turn: flock() on a lock file queues the waiters in the kernel
  shard-files     one SQLite file per process: no shared lock (the daemon would have to merge the files)
  shared-fsync    no daemon: commits without an fsync (synchronous=NORMAL) taken in turn with flock(), then one
                  process at a time fdatasyncs the WAL for every commit made so far; the others find theirs
                  covered (a counter in a shared file) and return without a flush of their own
  group-commit    the agent daemon's append socket (the real agent, the real Python client)

Prints a table and, last, one JSON line.
"""

import fcntl
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python", "tests"))
import rds_failover_buffer  # noqa: E402
from agent import Daemon, create_buffer, write_config  # noqa: E402

WINDOW_S = 2.0
ROUNDS = 3
BODY = "payload " * 10
INSERT = "INSERT INTO outbox (stream, id, payload, created_at_ms) VALUES ('events', ?, ?, ?) ON CONFLICT (stream, id) DO NOTHING"
STREAMS = {"events": {"table": "events", "key": ["id"], "columns": ["id", "body", "n"]}}
ALTERNATIVES = ["busy-handler", "jittered-retry", "fair-lock", "shard-files", "shared-fsync", "group-commit"]


def connect(path, busy_timeout_ms, synchronous="FULL"):
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")  # 0: no busy handler, the caller retries
    return db


def commit_row(db, row_id, n):
    db.execute("BEGIN IMMEDIATE")
    db.execute(INSERT, (row_id, json.dumps({"id": row_id, "body": BODY, "n": n}), int(time.time() * 1000)))
    db.execute("COMMIT")


def appender(kind, target, worker, start, results):
    """One process: prepares, waits for the common start, appends for WINDOW_S, reports count and latencies."""
    if kind == "raw":
        fd = os.open(f"{target}.{worker}", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        page = b"a" * 4096

        def op(n):
            os.write(fd, page)
            os.fdatasync(fd)

    elif kind == "group-commit":
        buffer = rds_failover_buffer.Buffer.from_config(target)
        buffer.append("events", {"id": f"{worker}-warm-{os.getpid()}", "body": BODY, "n": 0})

        def op(n):
            buffer.append("events", {"id": f"{worker}-{os.getpid()}-{n}", "body": BODY, "n": n})
            if buffer._db is not None:
                raise RuntimeError("an append went directly: the daemon did not answer")

    elif kind == "shared-fsync":
        db = connect(target, 5000, "NORMAL")
        db.execute("SELECT count(*) FROM outbox").fetchone()  # the WAL file exists from here on
        wal = os.open(target + "-wal", os.O_RDWR)
        lock = open(target + ".lock", "w")
        sync_lock = open(target + ".sync-lock", "w")
        counters = os.open(target + ".counters", os.O_RDWR | os.O_CREAT)  # commits made, commits on disk

        def read_counters():
            return struct.unpack("<qq", os.pread(counters, 16, 0).ljust(16, b"\0"))

        def op(n):
            row_id = f"{worker}-{os.getpid()}-{n}"
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                commit_row(db, row_id, n)
                mine = read_counters()[0] + 1
                os.pwrite(counters, struct.pack("<q", mine), 0)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            if read_counters()[1] >= mine:
                return
            fcntl.flock(sync_lock, fcntl.LOCK_EX)
            try:
                made, on_disk = read_counters()
                if on_disk < mine:  # not covered by the flush that just ended: flush every commit made so far
                    os.fdatasync(wal)
                    os.pwrite(counters, struct.pack("<q", made), 8)
            finally:
                fcntl.flock(sync_lock, fcntl.LOCK_UN)

    else:
        db = connect(f"{target}.{worker}" if kind == "shard-files" else target, 5000 if kind in ("busy-handler", "fair-lock") else 0)
        lock = open(target + ".lock", "w") if kind == "fair-lock" else None

        def op(n):
            row_id = f"{worker}-{os.getpid()}-{n}"
            if kind == "jittered-retry":
                for attempt in range(100_000):
                    try:
                        return commit_row(db, row_id, n)
                    except sqlite3.OperationalError as error:
                        if "locked" not in str(error) and "busy" not in str(error):
                            raise
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        time.sleep((0.05 + random.random() * min(5, 0.05 * 2**attempt)) / 1000)
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                commit_row(db, row_id, n)
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    start.wait()
    latencies = []
    end = time.monotonic() + WINDOW_S
    n = 0
    while time.monotonic() < end:
        t = time.perf_counter()
        op(n)
        latencies.append((time.perf_counter() - t) * 1000)
        n += 1
    results.put((n, latencies))


def window(kind, target, processes):
    start = multiprocessing.Event()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=appender, args=(kind, target, f"w{i}", start, results)) for i in range(processes)]
    for w in workers:
        w.start()
    time.sleep(0.5)  # every process prepared (connection, warm-up append) before the start
    start.set()
    answers = [results.get(timeout=WINDOW_S + 60) for _ in workers]  # an appender that died never answers
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"{kind}: an appender exited with {w.exitcode}")
    return sum(a[0] for a in answers), [x for a in answers for x in a[1]]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))] if ordered else float("nan")


def main():
    directory = tempfile.mkdtemp(prefix="append-alternatives-")
    print(f"files in {directory}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {ROUNDS} rounds of {WINDOW_S} s windows")
    targets = {}
    for kind in ALTERNATIVES:
        sub = os.path.join(directory, kind)
        os.mkdir(sub)
        config = write_config(sub, STREAMS, **({} if kind == "group-commit" else {"appendSocket": False}))
        create_buffer(config)
        if kind == "shard-files":
            for i in range(8):  # copies of the empty buffer the agent created (closed: no WAL left)
                shutil.copyfile(os.path.join(sub, "buffer.db"), os.path.join(sub, f"buffer.db.w{i}"))
        targets[kind] = config if kind == "group-commit" else os.path.join(sub, "buffer.db")
    daemon = Daemon(targets["group-commit"], os.path.join(directory, "group-commit", "buffer.db.sock")).start()
    kinds = [("raw", 1), ("raw", 8)] + [(k, p) for k in ALTERNATIVES for p in (1, 8)]
    figures = {key: {"count": 0, "latencies": []} for key in kinds}
    try:
        for r in range(ROUNDS):
            for i in range(len(kinds)):
                kind, processes = kinds[(i + r * 3) % len(kinds)]
                target = os.path.join(directory, "raw.log") if kind == "raw" else targets[kind]
                count, latencies = window(kind, target, processes)
                figures[(kind, processes)]["count"] += count
                figures[(kind, processes)]["latencies"] += latencies
    finally:
        counters = daemon.stop()
    rows = {}
    print(f"\n{'alternative':<16}{'procs':>6}{'rows/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs 1 proc':>11}")
    for kind, processes in kinds:
        f = figures[(kind, processes)]
        rate = f["count"] / (ROUNDS * WINDOW_S)
        row = {"rowsPerSecond": round(rate), "p50Ms": round(percentile(f["latencies"], 50), 3), "p99Ms": round(percentile(f["latencies"], 99), 3)}
        rows.setdefault(kind, {})["oneProcess" if processes == 1 else "eightProcesses"] = row
        one = rows[kind].get("oneProcess", row)["rowsPerSecond"]
        print(f"{kind:<16}{processes:>6}{row['rowsPerSecond']:>9}{row['p50Ms']:>9}{row['p99Ms']:>9}{rate / max(one, 1):>10.2f}x")
    print(f"group commit: {counters['rows'] / max(counters['commits'], 1):.2f} rows per commit on average")
    print(json.dumps({"alternatives": rows, "groupCommitRowsPerCommit": round(counters["rows"] / max(counters["commits"], 1), 2)}))


if __name__ == "__main__":
    main()
