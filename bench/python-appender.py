"""The Python client as a bench appender: the commands of bench/append-processes.ts (AppenderPool), one JSON answer each."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients", "python"))
import rds_failover_buffer  # noqa: E402

BODY = "payload " * 10
worker = sys.argv[1]
buffers = {}
warm = 0


def timed(ms, op):
    cpu = time.process_time()
    latencies = []
    end = time.monotonic() + ms / 1000
    n = 0
    while time.monotonic() < end:
        t = time.perf_counter_ns()
        op(n)
        latencies.append(round((time.perf_counter_ns() - t) / 1e3) / 1e3)
        n += 1
    return {"count": n, "latencies": latencies, "cpuMs": (time.process_time() - cpu) * 1000}


for line in sys.stdin:
    command, target, *rest = line.split()
    if target not in buffers:
        buffers[target] = rds_failover_buffer.Buffer.from_config(target)
    buffer = buffers[target]
    if command == "prepare":
        buffer.append("events", {"id": f"{worker}-warm-{warm}-{os.getpid()}", "body": BODY, "n": 0})
        warm += 1
        answer = {"ready": True}
    elif command == "append":
        tag, ms = rest[0], int(rest[1])
        answer = timed(ms, lambda n: buffer.append("events", {"id": f"{worker}-{tag}-{n}", "body": BODY, "n": n}))
    else:
        answer = {"error": f"unknown command {line.strip()!r}"}
    print(json.dumps(answer), flush=True)
