"""Tests of the Python client against real buffer files and the real agent daemon.

Run from the repository: ``python3 -m unittest discover -s clients/python/tests`` (``npm test`` runs them too).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rds_failover_buffer as rfb  # noqa: E402
from agent import REPO, Daemon, create_buffer, write_config  # noqa: E402

SHARED = os.path.join(REPO, "test", "support", "row-validation-cases.json")
STREAMS = {"events": {"table": "events", "key": ["id"], "columns": ["id", "body", "n"]}}


def rows_in(buffer_path: str) -> list:
    db = sqlite3.connect(f"file:{buffer_path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT stream, id, payload FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()


class SharedRowRules(unittest.TestCase):
    """The agent's rules and messages (src/agent/row-validation.ts is tested against the same file)."""

    @classmethod
    def setUpClass(cls):
        with open(SHARED, encoding="utf-8") as f:
            cls.shared = json.load(f)
        cls.streams = rfb._parse_streams(cls.shared["streams"])

    def outcome(self, case, row):
        try:
            row_id, payload = rfb.validate_row(case["stream"], self.streams.get(case["stream"]), row)
            return {"id": row_id, "payload": payload}
        except rfb.RowRejectedError as error:
            return {"error": str(error)}

    def check(self, case, result):
        expected = case["expect"]
        if "errorStartsWith" in expected:
            self.assertTrue(result.get("error", "").startswith(expected["errorStartsWith"]), result)
        elif "error" in expected:
            self.assertEqual(result.get("error"), expected["error"])
        else:
            self.assertEqual(result, {"id": expected["id"], "payload": result.get("payload")})

    def test_every_case_given_as_text(self):
        for case in self.shared["cases"]:
            with self.subTest(case["name"]):
                result = self.outcome(case, case["text"])
                self.check(case, result)
                if "error" not in result:
                    self.assertEqual(result["payload"], case["expect"].get("payload", case["text"]))

    def test_every_case_given_as_a_value(self):
        for case in self.shared["cases"]:
            if case.get("textOnly") or "errorStartsWith" in case["expect"]:
                continue
            with self.subTest(case["name"]):
                self.check(case, self.outcome(case, json.loads(case["text"])))

    def test_a_row_without_json_text_is_refused(self):
        with self.assertRaisesRegex(rfb.RowRejectedError, "^row cannot be serialized to JSON: "):
            rfb.row_text({"id": "a", "when": object()})
        with self.assertRaisesRegex(rfb.RowRejectedError, "^row cannot be serialized to JSON: "):
            rfb.row_text({"id": float("nan")})
        with self.assertRaisesRegex(rfb.RowRejectedError, "^row cannot be serialized to JSON: "):
            rfb.row_text({"id": "\ud800"})


class BufferTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="py-buffer-")
        self.addCleanup(self.dir.cleanup)
        self.config = write_config(self.dir.name, STREAMS)
        self.buffer_path = os.path.join(self.dir.name, "buffer.db")
        self.socket_path = self.buffer_path + ".sock"

    def open(self, **options) -> rfb.Buffer:
        buffer = rfb.Buffer.from_config(self.config, **options)
        self.addCleanup(buffer.close)
        return buffer


class DirectPath(BufferTestCase):
    """No daemon: rows go straight into the file the agent created."""

    def setUp(self):
        super().setUp()
        create_buffer(self.config)

    def test_append_is_durable_and_idempotent(self):
        buffer = self.open()
        self.assertEqual(buffer.append("events", {"id": "a", "body": "hello", "n": 1}), "a")
        self.assertEqual(buffer.append("events", {"id": "a", "body": "hello", "n": 1}), "a")
        self.assertEqual(rows_in(self.buffer_path), [("events", "a", '{"id":"a","body":"hello","n":1}')])
        other = rfb.Buffer.from_config(self.config)  # another process's view: committed, not just cached
        self.addCleanup(other.close)
        self.assertEqual(other.append("events", '{"id":"a","body":"hello","n":1}'), "a")

    def test_same_id_with_another_payload_is_refused(self):
        buffer = self.open()
        buffer.append("events", {"id": "a", "n": 1})
        with self.assertRaisesRegex(rfb.RowRejectedError, "^id 'a' is already in the buffer for stream 'events' with a different payload$"):
            buffer.append("events", {"id": "a", "n": 2})

    def test_append_many_stops_at_the_first_refused_row_and_keeps_the_rows_before_it(self):
        buffer = self.open()
        with self.assertRaises(rfb.RowRejectedError) as caught:
            buffer.append_many("events", [{"id": "m1"}, {"id": "m2"}, {"id": "m3", "colour": "red"}, {"id": "m4"}])
        self.assertEqual((caught.exception.index, caught.exception.ids), (2, ["m1", "m2"]))
        self.assertEqual(str(caught.exception), "field 'colour' is not a column of stream 'events' (columns: id, body, n)")
        self.assertEqual([r[1] for r in rows_in(self.buffer_path)], ["m1", "m2"])

    def test_the_file_is_opened_with_the_documented_pragmas(self):
        buffer = self.open()
        buffer.append("events", {"id": "p"})
        db = buffer._db
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL

    def test_a_forked_child_appends_on_its_own_connection(self):
        buffer = self.open()
        buffer.append("events", {"id": "parent-1"})
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if its append worked
            try:
                buffer.append("events", {"id": "child-1"})
                os._exit(0 if buffer._db is not None else 3)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        buffer.append("events", {"id": "parent-2"})
        self.assertEqual(sorted(r[1] for r in rows_in(self.buffer_path)), ["child-1", "parent-1", "parent-2"])


    def test_a_child_forked_while_a_thread_appends_appends_too(self):
        buffer = self.open()
        buffer.append("events", {"id": "parent-0"})
        # another process holds the write lock: the parent's thread waits inside append when the process forks
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline(); db.execute('ROLLBACK')", self.buffer_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.addCleanup(holder.wait)
        self.addCleanup(holder.stdin.close)  # releases the lock if the test fails first
        self.assertEqual(holder.stdout.readline(), b"locked\n")
        holder.stdout.close()
        inside = threading.Thread(target=buffer.append, args=("events", {"id": "parent-thread"}))
        inside.start()
        deadline = time.monotonic() + 5
        while not buffer._lock.locked() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(buffer._lock.locked())
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if its append returns (it waits for the holder like the parent's thread)
            done = threading.Event()
            threading.Thread(target=lambda: (buffer.append("events", {"id": "child-1"}), done.set()), daemon=True).start()
            os._exit(0 if done.wait(15) else 5)
        holder.stdin.write(b"release\n")
        holder.stdin.flush()
        _, status = os.waitpid(pid, 0)
        inside.join()
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(sorted(r[1] for r in rows_in(self.buffer_path)), ["child-1", "parent-0", "parent-thread"])


class MissingBuffer(BufferTestCase):
    def test_a_missing_buffer_file_is_an_error_and_is_not_created(self):
        buffer = self.open()
        with self.assertRaisesRegex(rfb.BufferConfigError, "^buffer file .*buffer.db does not exist: the agent creates it"):
            buffer.append("events", {"id": "a"})
        self.assertFalse(os.path.exists(self.buffer_path))


class Config(BufferTestCase):
    def test_errors_name_the_field(self):
        cases = [
            ({"streams": STREAMS}, "bufferPath: "),
            ({"bufferPath": "b.db", "streams": {}}, "streams: "),
            ({"bufferPath": "b.db", "streams": {"e": {"key": ["id"], "columns": []}}}, r"streams\.e\.columns: "),
            ({"bufferPath": "b.db", "streams": STREAMS, "appendSocket": 3}, "appendSocket: expected a socket path or false, got 3"),
            ({"bufferPath": "b.db", "streams": STREAMS, "busyTimeoutMs": "5s"}, 'busyTimeoutMs: expected an integer >= 0, got "5s"'),
        ]
        for raw, message in cases:
            with self.subTest(message):
                path = os.path.join(self.dir.name, "bad.json")
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(raw, f)
                with self.assertRaisesRegex(rfb.BufferConfigError, "^" + message):
                    rfb.Buffer.from_config(path)

    def test_paths_resolve_against_the_config_directory_and_the_socket_can_be_turned_off(self):
        buffer = self.open()
        self.assertEqual((buffer.buffer_path, buffer.socket_path), (self.buffer_path, self.socket_path))
        path = write_config(self.dir.name, STREAMS, appendSocket=False)
        self.assertIsNone(rfb.Buffer.from_config(path).socket_path)
        path = write_config(self.dir.name, STREAMS, appendSocket="run/a.sock")
        self.assertEqual(rfb.Buffer.from_config(path).socket_path, os.path.join(self.dir.name, "run", "a.sock"))

    def test_the_module_level_append_uses_the_environment_config(self):
        create_buffer(self.config)
        os.environ[rfb.CONFIG_ENV] = self.config
        self.addCleanup(os.environ.pop, rfb.CONFIG_ENV)
        self.addCleanup(setattr, rfb, "_default", None)
        self.assertEqual(rfb.append("events", {"id": "env-1"}), "env-1")
        self.assertEqual(rfb.append_many("events", [{"id": "env-2"}, {"id": "env-3"}]), ["env-2", "env-3"])
        self.assertEqual([r[1] for r in rows_in(self.buffer_path)], ["env-1", "env-2", "env-3"])


class NotTheDaemon(BufferTestCase):
    """Something else answers on the socket: every append goes directly at once, none is lost or raises."""

    # $n: the request's own number, so that only what is missing or wrong in the answer sends it directly
    REPLIES = [b"not json", b"null", b"[1]", b'{"ids": ["x"]}', b'{"n": $n}', b'{"n": $n, "ids": [1]}', b'{"n": $n, "ids": [], "rejected": {"index": "0"}}']
    # well-formed, but the ids do not account for the one row sent: taken as acknowledgements, nothing would be stored
    REPLIES += [b'{"n": $n, "ids": []}', b'{"n": $n, "ids": ["x", "y"]}', b'{"n": $n, "ids": [], "rejected": {"index": 1, "message": "m"}}']

    def setUp(self):
        super().setUp()
        create_buffer(self.config)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.socket_path)
        server.listen()
        self.addCleanup(server.close)

        def answer_wrongly():
            for reply in self.REPLIES:
                connection, _ = server.accept()
                request = json.loads(connection.recv(65536).split(b"\n")[0])
                connection.sendall(reply.replace(b"$n", str(request["n"]).encode()) + b"\n")
                self.addCleanup(connection.close)

        threading.Thread(target=answer_wrongly, daemon=True).start()

    def test_each_wrong_answer_sends_the_append_directly(self):
        buffer = self.open()
        buffer.timeout = 60.0  # far longer than the test: only the answer's check sends them directly in time
        started = time.monotonic()
        ids = []
        for i in range(len(self.REPLIES)):
            buffer._last_attempt = float("-inf")  # connect again at once (to the next wrong answer)
            ids.append(buffer.append("events", {"id": f"w{i}"}))
            self.assertIsNone(buffer._socket)  # the connection was dropped
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(ids, [f"w{i}" for i in range(len(self.REPLIES))])
        self.assertEqual([r[1] for r in rows_in(self.buffer_path)], ids)


class FastPath(BufferTestCase):
    """With the daemon serving the append socket."""

    def setUp(self):
        super().setUp()
        create_buffer(self.config)
        self.daemon = Daemon(self.config, self.socket_path).start()
        self.addCleanup(lambda: self.daemon.process.poll() is None and self.daemon.kill())

    def test_rows_go_through_the_daemon_with_the_same_answers(self):
        self.addCleanup(setattr, rfb, "DIRECT_WHILE_ALONE_SECONDS", rfb.DIRECT_WHILE_ALONE_SECONDS)
        rfb.DIRECT_WHILE_ALONE_SECONDS = 0  # ask the daemon every time, even when it says this process appends alone
        buffer = self.open()
        ids = [buffer.append("events", {"id": f"s{i}", "n": i}) for i in range(20)]
        self.assertEqual(buffer.append_many("events", [{"id": "s20"}, {"id": "s21"}]), ["s20", "s21"])
        self.assertEqual(buffer.append("events", {"id": "s0", "n": 0}), "s0")  # acknowledged again
        with self.assertRaises(rfb.RowRejectedError) as caught:
            buffer.append_many("events", [{"id": "s22"}, {"id": "s23", "colour": "red"}])
        self.assertEqual((caught.exception.index, caught.exception.ids), (1, ["s22"]))
        self.assertEqual(str(caught.exception), "field 'colour' is not a column of stream 'events' (columns: id, body, n)")
        with self.assertRaisesRegex(rfb.RowRejectedError, "^id 's1' is already in the buffer for stream 'events' with a different payload$"):
            buffer.append("events", {"id": "s1", "n": 99})
        counters = self.daemon.stop()
        self.assertEqual(ids, [f"s{i}" for i in range(20)])
        self.assertEqual(counters["requests"], 24)  # every append went through the socket
        self.assertEqual(len(rows_in(self.buffer_path)), 23)
        self.assertEqual(buffer._db, None)  # and none directly

    def test_busy_timeout_0_appends_directly(self):
        buffer = self.open()
        buffer.timeout = 0.0
        ids = []
        for i in range(5):
            buffer._last_attempt = float("-inf")  # would connect again at once
            ids.append(buffer.append("events", {"id": f"z{i}"}))
            time.sleep(0.05)
        self.assertEqual(ids, [f"z{i}" for i in range(5)])
        self.assertEqual(self.daemon.stop()["requests"], 0)
        self.assertEqual([r[1] for r in rows_in(self.buffer_path)], ids)

    def test_alone_it_appends_directly_until_another_writer_holds_the_lock(self):
        buffer = self.open()
        through_daemon = 0  # the appends made while the daemon had not said this process appends alone
        ids = []

        def append(row_id):
            nonlocal through_daemon
            through_daemon += time.monotonic() >= buffer._direct_until
            ids.append(buffer.append("events", {"id": row_id}))

        for i in range(1000):
            if time.monotonic() < buffer._direct_until:
                break
            append(f"first-{i}")
        self.assertLess(time.monotonic(), buffer._direct_until, "the daemon never answered alone")
        append("direct-1")
        self.assertIsNotNone(buffer._db)  # that one went directly
        locked, release = threading.Event(), threading.Event()

        def hold_the_lock():
            other = sqlite3.connect(self.buffer_path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(0.2)
            other.execute("ROLLBACK")
            other.close()

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        locked.wait()
        threading.Timer(0.05, release.set).start()
        append("while-locked")  # directly, after waiting for the lock: so not alone any more
        holder.join()
        self.assertGreaterEqual(time.monotonic(), buffer._direct_until)
        append("after-lock")  # through the daemon
        self.assertEqual(self.daemon.stop()["requests"], through_daemon)
        self.assertLess(through_daemon, len(ids))
        self.assertEqual([r[1] for r in rows_in(self.buffer_path)], ids)

    def test_appends_go_on_directly_while_the_daemon_is_down_and_return_to_it(self):
        buffer = self.open()
        buffer.append("events", {"id": "before"})
        self.daemon.kill()
        self.assertEqual(buffer.append("events", {"id": "while-down"}), "while-down")  # the dead connection: direct
        self.assertEqual(buffer.append("events", {"id": "while-down-2"}), "while-down-2")
        self.assertIsNotNone(buffer._db)
        self.daemon = Daemon(self.config, self.socket_path).start()  # replaces the stale socket
        time.sleep(rfb.RECONNECT_AFTER_SECONDS)
        self.assertEqual(buffer.append("events", {"id": "after"}), "after")
        self.assertEqual(self.daemon.stop()["requests"], 1)
        self.assertEqual([r[1] for r in rows_in(self.buffer_path)], ["before", "while-down", "while-down-2", "after"])


if __name__ == "__main__":
    unittest.main()
