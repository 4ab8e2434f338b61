"""Store files of older schema versions open and migrate; a newer one is refused clearly.

``tests/data/store-v1.sql`` is a version-1 store as amq 0.1.0 wrote it (queues, an
exchange, a binding, messages with properties and headers).
"""

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import AMQ_CMD

from amqcli import errors
from amqcli.broker import store as store_module
from amqcli.broker.store import Store

V1_DUMP = Path(__file__).parent.parent / "data" / "store-v1.sql"


def make_v1_store(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(V1_DUMP.read_text())
    db.close()
    return path


def amq(store: Path, *args: str, expect: int = 0,
        stdin: bytes = b"") -> subprocess.CompletedProcess:
    proc = subprocess.run([*AMQ_CMD, "--url", f"local:{store}", *args], capture_output=True,
                          timeout=60, check=False, input=stdin)
    assert proc.returncode == expect, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


def test_a_version_1_store_opens_with_its_queues_and_messages(tmp_path):
    store = make_v1_store(tmp_path / "v1.db")
    queues = {q["name"]: q for q in json.loads(amq(store, "list", "queues", "-F", "json").stdout)}
    assert queues["jobs"]["messages"] == 3 and queues["jobs"]["durable"]
    assert queues["jobs"]["arguments"] == {"x-max-length": 100}
    assert "empty" in queues
    out = amq(store, "receive", "jobs", "--count", "3", "-F", "json").stdout.splitlines()
    first, *rest = [json.loads(line) for line in out]
    assert (first["body"], first["exchange"], first["routing_key"]) == \
        ("first", "events", "job.created")
    assert first["headers"] == {"attempt": 1}
    assert first["properties"]["correlation_id"] == "c-1"
    assert [m["body"] for m in rest] == ["two", "three"]
    assert "job.#" in amq(store, "list", "bindings").stdout.decode()
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION


def test_each_migration_step_runs_once_in_one_transaction(tmp_path, monkeypatch):
    store = make_v1_store(tmp_path / "v1.db")
    ran = []

    def to_2(db):
        ran.append(2)
        db.execute("CREATE TABLE added_in_2 (x)")

    def to_3(db):
        ran.append(3)
        db.execute("ALTER TABLE queues ADD COLUMN added_in_3 INTEGER NOT NULL DEFAULT 7")

    monkeypatch.setattr(store_module, "MIGRATIONS", {2: to_2, 3: to_3})
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(store_module, "STORE_OBJECTS",
                        store_module.STORE_OBJECTS | {"added_in_2"})
    opened = Store(store)
    assert ran == [2, 3] and not opened.created
    assert opened.read("PRAGMA user_version") == [(3,)]
    assert opened.read("SELECT name, added_in_3 FROM queues ORDER BY name") == \
        [("empty", 7), ("jobs", 7)]
    assert opened.read("SELECT count(*) FROM messages") == [(3,)]
    opened.close()
    Store(store).close()
    assert ran == [2, 3]  # already migrated: nothing runs again


def test_a_failing_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    store = make_v1_store(tmp_path / "v1.db")

    def to_2(db):
        db.execute("CREATE TABLE added_in_2 (x)")
        db.execute("DELETE FROM messages")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_module, "MIGRATIONS", {2: to_2})
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with pytest.raises(errors.StoreError, match=r"v1\.db"):
        Store(store)
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'added_in_2'").fetchall()


def test_a_store_of_a_newer_amq_is_refused_and_left_alone(tmp_path):
    store = make_v1_store(tmp_path / "v1.db")
    db = sqlite3.connect(store)
    db.execute(f"PRAGMA user_version = {store_module.SCHEMA_VERSION + 1}")
    db.close()
    before = store.read_bytes()
    err = amq(store, "list", "queues", expect=8).stderr.decode()
    assert "newer amq" in err and str(store) in err and len(err.strip().splitlines()) == 1
    assert store.read_bytes() == before


def test_a_new_store_opened_by_many_processes_at_once_opens_for_each(tmp_path):
    """Creating one new store from several processes at once (hello world in two
    terminals): each open succeeds, none sees "database is locked"."""
    for trial in range(10):
        path = tmp_path / f"new-{trial}.db"
        procs = [subprocess.Popen([*AMQ_CMD, "--url", f"local:{path}", "list", "queues"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(6)]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()


def test_a_version_1_store_takes_streams_after_migrating(tmp_path):
    """Version 4 adds the stream tables: a migrated store declares, appends and reads."""
    store = make_v1_store(tmp_path / "v1.db")
    amq(store, "declare", "queue", "events", "--type", "stream", "--durable")
    amq(store, "send", "events", "--lines", stdin=b"a\nb\n")
    out = amq(store, "receive", "events", "--offset", "first", "--to-end", "-F", "json").stdout
    assert [(m["body"], m["stream_offset"]) for m in map(json.loads, out.splitlines())] == \
        [("a", 0), ("b", 1)]
    db = sqlite3.connect(store)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"streams", "stream_segments", "stream_chunks"} <= tables
