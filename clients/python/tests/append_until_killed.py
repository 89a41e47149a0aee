"""Appends rows through the Python client until killed, printing each id once append() returned (acknowledged).

    python3 append_until_killed.py <agent config> <id prefix>
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import rds_failover_buffer  # noqa: E402

buffer = rds_failover_buffer.Buffer.from_config(sys.argv[1])
prefix = sys.argv[2]
n = 0
while True:
    row_id = buffer.append("events", {"id": f"{prefix}-{n}", "body": "python", "n": n})
    sys.stdout.write(row_id + "\n")
    sys.stdout.flush()
    n += 1
