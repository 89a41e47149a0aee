"""The real agent for the Python client's tests: creates buffer files and runs the daemon (Node.js, from this repository)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import List, Optional

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def agent_command() -> List[str]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the tests run the real agent (bin/rds-failover-agent.ts)")
    return [node, "--import", "tsx", os.path.join(REPO, "bin", "rds-failover-agent.ts")]


def write_config(directory: str, streams: dict, **extra) -> str:
    """An agent config whose writer refuses connections: appends never wait on PostgreSQL, so none is needed."""
    path = os.path.join(directory, "agent.json")
    config = {"writerUrl": "postgres://agent:secret@127.0.0.1:1/none", "bufferPath": "buffer.db", "streams": streams, **extra}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return path


def create_buffer(config_path: str) -> None:
    """The agent creates the buffer file and its schema (an append of nothing)."""
    subprocess.run(agent_command() + ["append", "--stream", _first_stream(config_path), "--config", config_path], cwd=REPO, input=b"", check=True, capture_output=True)


class Daemon:
    """`rds-failover-agent run` on a buffer: serves the append socket (and fails to sync, which appends never notice)."""

    def __init__(self, config_path: str, socket_path: str):
        self.config_path = config_path
        self.socket_path = socket_path
        self.process: Optional[subprocess.Popen] = None
        self.log_path = ""
        self.log = ""

    def start(self) -> "Daemon":
        # its log goes to a file: a pipe nobody reads could fill and stall the daemon
        self.log_path = self.socket_path + f".{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(agent_command() + ["run", "--config", self.config_path], cwd=REPO, stderr=log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 90  # the agent starts slowly on a busy 2-core machine
        while not _answers(self.socket_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent daemon did not serve {self.socket_path}: {self.read_log()[-2000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> dict:
        """SIGTERM; returns the daemon's group-commit counters from its last log line."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()
        self.log = self.read_log()
        for line in reversed(self.log.splitlines()):
            event = json.loads(line)
            if event.get("message") == "agent stopped":
                return event.get("groupCommits") or {}
        raise RuntimeError(f"no 'agent stopped' in the daemon's log: {self.log[-2000:]}")


    def read_log(self) -> str:
        with open(self.log_path, encoding="utf-8") as f:
            return f.read()


def _answers(socket_path: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _first_stream(config_path: str) -> str:
    with open(config_path, encoding="utf-8") as f:
        return next(iter(json.load(f)["streams"]))
