"""Append rows to an rds-failover-agent write buffer from Python (standard library only).

A row is acknowledged -- ``append`` returned its id -- once it is committed on the worker's disk
(SQLite WAL, ``synchronous=FULL``); the agent then copies it to PostgreSQL, exactly once in effect.

Two paths, one contract (docs/buffer.md in the repository):

* **Fast path**: when the agent daemon (``rds-failover-agent run``) serves its append socket, the row
  goes there and is group-committed with the other processes' rows: one fsync for many callers.
  The daemon answers only after the fsync that covers the row.
* **Direct path**: when there is no daemon (not started, restarting, killed), the row is inserted
  into the buffer file directly, validated here by the same rules and with the same messages as the
  agent's. The daemon is never the only path; a caller never waits on PostgreSQL.

Re-appending a row that is already there (same stream, id and payload) acknowledges it again and
stores nothing: so retrying after a crash, or after the daemon died mid-answer, never duplicates.

Usage::

    from rds_failover_buffer import Buffer

    buffer = Buffer.from_config("/etc/rds-failover/agent.json")  # default: $RDS_FAILOVER_AGENT_CONFIG
    row_id = buffer.append("events", {"id": "evt-1", "body": "hello", "n": 1})

The buffer file must exist: the agent creates it (any agent command on it, e.g. ``run``). This module
never creates the schema, so there is one definition of it (``src/agent/outbox-schema.ts``).

Safe to use in processes forked after it was created (Celery prefork): a child opens its own socket
and SQLite connection.
"""

from __future__ import annotations

import decimal
import json
import math
import os
import socket
import sqlite3
import threading
import time
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["Buffer", "RowRejectedError", "BufferConfigError", "append", "append_many"]

CONFIG_ENV = "RDS_FAILOVER_AGENT_CONFIG"
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
DEFAULT_BUSY_TIMEOUT_MS = 5000
# After the daemon was found down, appends go directly for this long before the socket is tried again.
RECONNECT_AFTER_SECONDS = 1.0
# The daemon answers "alone" when only this connection appended through it lately: an fsync of our own is then
# quicker than the round trip, so appends go directly this long before the daemon is asked again (docs/buffer.md).
DIRECT_WHILE_ALONE_SECONDS = 1.0
MAX_SAFE_INTEGER = 2**53 - 1
# What JavaScript's String.prototype.trim removes (the agent trims text rows the same way).
_JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


class RowRejectedError(ValueError):
    """The buffer refused a row: nothing was written for it.

    ``index`` is the refused row's position in the rows given; ``ids`` are the ids of the rows
    before it, which are committed (``append_many`` stops at the first refused row).
    """

    def __init__(self, message: str, index: int = 0, ids: Optional[List[str]] = None):
        super().__init__(message)
        self.index = index
        self.ids = ids or []


class BufferConfigError(ValueError):
    """The agent config or the buffer file cannot be used; the message names the field or the file."""


class StreamConfig:
    """The part of a stream's config an appender needs."""

    def __init__(self, name: str, key: Sequence[str], columns: Sequence[str], max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES):
        self.name = name
        self.key = list(key)
        self.columns = list(columns)
        self.max_payload_bytes = max_payload_bytes


class Buffer:
    """A worker's write buffer: ``append`` returns a row's id once the row is durable on disk."""

    def __init__(
        self,
        buffer_path: str,
        streams: Mapping[str, StreamConfig],
        socket_path: Optional[str] = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        use_socket: bool = True,
    ):
        """``socket_path`` defaults to the buffer path plus ``.sock`` (as the agent's); ``use_socket=False``
        always appends directly. ``busy_timeout_ms`` bounds the wait for the SQLite write lock and for the
        daemon's answer (after which the row is appended directly)."""
        self.buffer_path = os.path.abspath(buffer_path)
        self.streams = dict(streams)
        self.socket_path = (socket_path or self.buffer_path + ".sock") if use_socket else None
        self.timeout = busy_timeout_ms / 1000.0
        self._lock = threading.Lock()
        _buffers.add(self)
        self._pid = os.getpid()
        self._db: Optional[sqlite3.Connection] = None
        self._socket: Optional[socket.socket] = None
        self._reader: Any = None
        self._last_attempt = float("-inf")
        self._request_number = 0
        self._direct_until = float("-inf")
        self._inherited: List[Any] = []

    @classmethod
    def from_config(cls, config_path: Optional[str] = None, buffer_path: Optional[str] = None) -> "Buffer":
        """A buffer as the agent's JSON config describes it (``bufferPath``, ``streams``, ``appendSocket``,
        ``busyTimeoutMs``); relative paths resolve against the config file's directory, as for the agent."""
        path = config_path or os.environ.get(CONFIG_ENV)
        if not path:
            raise BufferConfigError(f"no agent config: pass config_path or set {CONFIG_ENV}")
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as error:
            raise BufferConfigError(f"cannot read agent config {path}: {error}") from error
        if not isinstance(raw, dict):
            raise BufferConfigError(f"config: expected a JSON object in {path}")
        base = os.path.dirname(os.path.abspath(path))
        target = buffer_path or raw.get("bufferPath")
        if not isinstance(target, str) or target == "":
            raise BufferConfigError("bufferPath: expected the buffer file's path in the config (or pass buffer_path)")
        socket_setting = raw.get("appendSocket")
        if socket_setting is not None and socket_setting is not False and not isinstance(socket_setting, str):
            raise BufferConfigError(f"appendSocket: expected a socket path or false, got {json.dumps(socket_setting)}")
        busy = raw.get("busyTimeoutMs", DEFAULT_BUSY_TIMEOUT_MS)
        if isinstance(busy, bool) or not isinstance(busy, int) or busy < 0:
            raise BufferConfigError(f"busyTimeoutMs: expected an integer >= 0, got {json.dumps(busy)}")
        return cls(
            os.path.join(base, target),
            _parse_streams(raw.get("streams")),
            socket_path=os.path.join(base, socket_setting) if isinstance(socket_setting, str) else None,
            busy_timeout_ms=busy,
            use_socket=socket_setting is not False,
        )

    def append(self, stream: str, row: Any) -> str:
        """Stores one row durably and returns its id.

        ``row`` is a dict of column values (or its JSON text). The id is the key value as text for a
        one-column key, else the JSON array of the key values. Raises ``RowRejectedError`` (nothing
        written) for a row the stream does not accept.
        """
        return self.append_many(stream, [row])[0]

    def append_many(self, stream: str, rows: Sequence[Any]) -> List[str]:
        """Stores rows in one durable commit and returns their ids, in order. At the first refused row it
        raises ``RowRejectedError``; the rows before it (``error.ids``) are committed."""
        if len(rows) == 0:
            return []
        with self._lock:
            self._after_fork()
            texts: List[str] = []
            for index, row in enumerate(rows):
                try:
                    texts.append(row_text(row))
                except RowRejectedError:
                    return self._direct(stream, rows)  # stores the rows before it, names the error
            answer = self._through_daemon(stream, texts)
            if answer is None:
                return self._direct(stream, rows)
        ids = list(answer["ids"])
        rejected = answer.get("rejected")
        if rejected is not None:
            raise RowRejectedError(rejected["message"], rejected["index"], ids)
        return ids

    def close(self) -> None:
        """Closes the socket and the SQLite connection (a later append opens them again)."""
        with self._lock:
            self._drop_socket()
            if self._db is not None:
                self._db.close()
                self._db = None

    # ------------------------------------------------------------------ fast path

    def _through_daemon(self, stream: str, texts: List[str]) -> Optional[Dict[str, Any]]:
        """The daemon's answer, or None when it cannot answer now (the caller appends directly)."""
        if time.monotonic() < self._direct_until or not self._connect():
            return None
        self._request_number += 1
        n = self._request_number
        line = json.dumps({"n": n, "stream": stream, "rows": texts}, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._socket.sendall(line.encode("utf-8"))
            while True:
                received = self._reader.readline()
                if not received.endswith(b"\n"):
                    raise OSError("the daemon closed the connection")
                answer = _daemon_answer(json.loads(received))
                if answer["n"] == n:
                    _check_covers(answer, len(texts))
                    break
        except (OSError, ValueError, UnicodeError):
            # Gone, timed out or garbled: whatever it committed, a direct re-append acknowledges it again.
            self._drop_socket()
            self._last_attempt = time.monotonic()
            return None
        if "error" in answer:
            return None
        if answer.get("alone") is True:
            self._direct_until = time.monotonic() + DIRECT_WHILE_ALONE_SECONDS
        return answer

    def _connect(self) -> bool:
        if self._socket is not None:
            return True
        # busy_timeout_ms 0 leaves no time to wait for an answer (and would make the socket non-blocking): directly.
        if self.socket_path is None or self.timeout <= 0 or time.monotonic() - self._last_attempt < RECONNECT_AFTER_SECONDS:
            return False
        self._last_attempt = time.monotonic()
        if not os.path.exists(self.socket_path):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            return False
        self._socket = s
        self._reader = s.makefile("rb")
        return True

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._reader.close()
            self._socket.close()
        self._socket = None
        self._reader = None

    # ------------------------------------------------------------------ direct path

    def _direct(self, stream: str, rows: Sequence[Any]) -> List[str]:
        """One BEGIN IMMEDIATE ... COMMIT into the file, with the agent's rules (Outbox.appendMany)."""
        db = self._connection()
        ids: List[str] = []
        refused: Optional[RowRejectedError] = None
        now_ms = int(time.time() * 1000)
        started = time.monotonic()
        db.execute("BEGIN IMMEDIATE")
        if time.monotonic() - started > 0.0005:
            # SQLite's busy handler waited (it sleeps 1 ms at least): another process writes too, so this one is not
            # alone (any more) and its next appends share the daemon's commits.
            self._direct_until = float("-inf")
        try:
            for index, row in enumerate(rows):
                try:
                    row_id, payload = validate_row(stream, self.streams.get(stream), row)
                    inserted = db.execute(
                        "INSERT INTO outbox (stream, id, payload, created_at_ms) VALUES (?, ?, ?, ?) ON CONFLICT (stream, id) DO NOTHING",
                        (stream, row_id, payload, now_ms),
                    ).rowcount
                    if inserted == 0:
                        existing = db.execute("SELECT payload FROM outbox WHERE stream = ? AND id = ?", (stream, row_id)).fetchone()
                        if existing is not None and existing[0] != payload:
                            raise RowRejectedError(f"id '{row_id}' is already in the buffer for stream '{stream}' with a different payload")
                    ids.append(row_id)
                except RowRejectedError as error:
                    refused = RowRejectedError(str(error), index, ids)
                    break
            db.execute("COMMIT")  # durable when it returns: synchronous=FULL
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if refused is not None:
            raise refused
        return ids

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if not os.path.exists(self.buffer_path):
            raise BufferConfigError(
                f"buffer file {self.buffer_path} does not exist: the agent creates it (start rds-failover-agent run on it)"
            )
        # mode=rw: never create an empty file that is not a buffer; autocommit, transactions are explicit
        db = sqlite3.connect(f"file:{self.buffer_path}?mode=rw", uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            has_outbox = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone()
            if has_outbox is None:
                raise BufferConfigError(f"{self.buffer_path} is not an rds-failover buffer (no outbox table): the agent creates it")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _after_fork(self) -> None:
        """A forked child must not share the parent's socket or SQLite connection: it opens its own."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        # Closing the parent's SQLite connection here could drop locks SQLite tracks per process: keep it unused.
        self._inherited.extend(x for x in (self._db, self._socket, self._reader) if x is not None)
        self._db = None
        self._socket = None
        self._reader = None
        self._last_attempt = float("-inf")


# ---------------------------------------------------------------------- the agent's row rules


def row_text(row: Any) -> str:
    """The JSON text a row is stored as: a str trimmed as it is, anything else compact JSON."""
    try:
        text = row.strip(_JS_WHITESPACE) if isinstance(row, str) else json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        text.encode("utf-8")  # a lone surrogate has no UTF-8 form: refuse it here, not halfway through a write
    except (TypeError, ValueError) as error:
        raise RowRejectedError(f"row cannot be serialized to JSON: {error}") from error
    return text


def validate_row(stream_name: str, stream: Optional[StreamConfig], row: Any) -> "tuple[str, str]":
    """(id, payload) of a row the stream accepts; raises RowRejectedError with the agent's message otherwise.

    The rules and messages are the agent's (src/agent/row-validation.ts); both are tested against
    test/fixtures/row-validation-cases.json.
    """
    if stream is None:
        raise RowRejectedError(f"unknown stream '{stream_name}': add it to the config's streams")
    payload = row_text(row)
    try:
        value = json.loads(payload, parse_constant=_refuse_constant)
    except ValueError as error:
        raise RowRejectedError(f"row is not valid JSON ({error}): expected one JSON object per row") from error
    if not isinstance(value, dict):
        raise RowRejectedError(f"row must be a JSON object with the stream's columns, got {_describe(value)}")
    for name in value:
        if name not in stream.columns:
            raise RowRejectedError(f"field '{name}' is not a column of stream '{stream.name}' (columns: {', '.join(stream.columns)})")
    key_values = [_key_value(stream, column, value.get(column, _MISSING)) for column in stream.key]
    size = len(payload.encode("utf-8"))
    if size > stream.max_payload_bytes:
        raise RowRejectedError(f"payload is {size} bytes, over maxPayloadBytes {stream.max_payload_bytes} of stream '{stream.name}'")
    if len(key_values) == 1:
        return _js_string(key_values[0]), payload
    return "[" + ",".join(_js_json(v) for v in key_values) + "]", payload


_MISSING = object()


def _check_covers(answer: Dict[str, Any], rows: int) -> None:
    """ValueError unless a committed answer has an id for each row, or for each row before the rejected one."""
    if "error" in answer:
        return
    ids, rejected = answer["ids"], answer.get("rejected")
    covered = len(ids) == rows if rejected is None else len(ids) == rejected["index"] < rows
    if not covered:
        raise ValueError("not an answer of the agent daemon: its ids do not match the rows sent")


def _daemon_answer(value: Any) -> Dict[str, Any]:
    """The daemon's answer (docs/buffer.md, the wire protocol); ValueError when ``value`` is not one."""
    if not isinstance(value, dict) or not isinstance(value.get("n"), int):
        raise ValueError("not an answer of the agent daemon")
    if isinstance(value.get("error"), str):
        return value
    ids, rejected = value.get("ids"), value.get("rejected")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("not an answer of the agent daemon")
    if rejected is not None and not (isinstance(rejected, dict) and isinstance(rejected.get("index"), int) and isinstance(rejected.get("message"), str)):
        raise ValueError("not an answer of the agent daemon")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _key_value(stream: StreamConfig, column: str, value: Any) -> Any:
    if value is _MISSING:
        raise RowRejectedError(f"key field '{column}' is missing (stream '{stream.name}' is keyed on {', '.join(stream.key)})")
    if isinstance(value, str):
        if value == "":
            raise RowRejectedError(f"key field '{column}' must not be an empty string")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if (isinstance(value, int) or value.is_integer()) and abs(value) > MAX_SAFE_INTEGER:
            raise RowRejectedError(f"key field '{column}' is an integer beyond 2^53 that JSON parsers round: send it as a string")
        return value
    raise RowRejectedError(f"key field '{column}' must be a string or a number, got {_describe(value)}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {_js_json(value)}"
    return f"number {_js_string(value) if math.isfinite(value) else 'null'}"  # JSON.stringify(Infinity)


def _js_json(value: Any) -> str:
    """JSON.stringify of a string or a number, as JavaScript writes it."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else _js_string(value)


def _js_string(value: Any) -> str:
    """String(value) in JavaScript for a key value: 5.0 is '5', 1e-05 is '0.00001' (ECMAScript Number::toString)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    s = "".join(map(str, digits)).rstrip("0") or "0"
    k = len(s)
    n = exponent + len(digits)  # value = 0.s * 10^n
    prefix = "-" if sign else ""
    if k <= n <= 21:
        return prefix + s + "0" * (n - k)
    if 0 < n <= 21:
        return prefix + s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return prefix + "0." + "0" * (-n) + s
    e = n - 1
    mantissa = s if k == 1 else s[0] + "." + s[1:]
    return f"{prefix}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _parse_streams(value: Any) -> Dict[str, StreamConfig]:
    if not isinstance(value, dict) or len(value) == 0:
        raise BufferConfigError("streams: expected at least one stream in the agent config")
    streams: Dict[str, StreamConfig] = {}
    for name, s in value.items():
        field = f"streams.{name}"
        if not isinstance(s, dict):
            raise BufferConfigError(f"{field}: expected a JSON object")
        for part in ("key", "columns"):
            names = s.get(part)
            if not isinstance(names, list) or len(names) == 0 or not all(isinstance(c, str) and c for c in names):
                raise BufferConfigError(f"{field}.{part}: expected a non-empty array of column names")
        max_bytes = s.get("maxPayloadBytes", DEFAULT_MAX_PAYLOAD_BYTES)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 2:
            raise BufferConfigError(f"{field}.maxPayloadBytes: expected an integer >= 2, got {json.dumps(max_bytes)}")
        streams[name] = StreamConfig(name, s["key"], s["columns"], max_bytes)
    return streams


# ---------------------------------------------------------------------- module-level convenience

_default: Optional[Buffer] = None
_default_lock = threading.Lock()


# ---------------------------------------------------------------------- fork safety

# Every Buffer, for the fork handler below.
_buffers: "weakref.WeakSet[Buffer]" = weakref.WeakSet()


def _fresh_locks_in_child() -> None:
    """A thread of the parent may hold a lock at fork() (inside append, waiting for the SQLite write lock); the
    child has no copy of that thread to release it. The child gets new locks, and its first append leaves the
    parent's connection and socket unused (Buffer._after_fork)."""
    global _default_lock
    _default_lock = threading.Lock()
    for buffer in list(_buffers):
        buffer._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


def _default_buffer() -> Buffer:
    global _default
    with _default_lock:
        if _default is None:
            _default = Buffer.from_config()
        return _default


def append(stream: str, row: Any) -> str:
    """``Buffer.append`` on the buffer that ``$RDS_FAILOVER_AGENT_CONFIG`` describes."""
    return _default_buffer().append(stream, row)


def append_many(stream: str, rows: Sequence[Any]) -> List[str]:
    """``Buffer.append_many`` on the buffer that ``$RDS_FAILOVER_AGENT_CONFIG`` describes."""
    return _default_buffer().append_many(stream, rows)
