"""Celery (from PyPI) end to end on `amq broker serve`, through the package's own
`amq_broker` fixture: a real worker process with `broker_url` at the server runs tasks
whose results come back through the `rpc://` result backend; a task retries; a revoked
one never runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import TaskRevokedError

from amqcli.server.fixture import Running

TASKS = """
import os
from celery import Celery

app = Celery("tasks16", broker=os.environ["BROKER_URL"], backend="rpc://")
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False

@app.task
def add(x, y):
    return x + y

@app.task(bind=True, max_retries=5)
def flaky(self, marker):
    tries = int(open(marker).read()) if os.path.exists(marker) else 0
    with open(marker, "w") as f:
        f.write(str(tries + 1))
    if tries < 2:
        raise self.retry(countdown=0.1)
    return f"ok after {tries} retries"

@app.task
def touch(path):
    open(path, "w").close()
"""


@pytest.fixture
def worker(amq_broker: Running, tmp_path: Path) -> Iterator[object]:
    (tmp_path / "tasks16.py").write_text(textwrap.dedent(TASKS))
    env = dict(os.environ, BROKER_URL=amq_broker.url, PYTHONPATH=str(tmp_path))
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks16", "worker", "--pool", "solo",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    sys.path.insert(0, str(tmp_path))
    os.environ["BROKER_URL"] = amq_broker.url
    try:
        import tasks16
        yield tasks16
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tasks16", None)
        del os.environ["BROKER_URL"]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(errors="replace").replace(
        "celery.exceptions.Retry", ""), log.read_text()


def test_tasks_run_and_their_results_come_back(worker):
    results = [worker.add.delay(i, i) for i in range(5)]
    assert [r.get(timeout=60) for r in results] == [0, 2, 4, 6, 8]


def test_a_task_retries(worker, tmp_path: Path):
    marker = tmp_path / "tries"
    assert worker.flaky.delay(str(marker)).get(timeout=60) == "ok after 2 retries"
    assert marker.read_text() == "3"


def test_a_revoked_task_never_runs(worker, tmp_path: Path):
    assert worker.add.delay(1, 1).get(timeout=60) == 2  # the worker is up
    path = tmp_path / "touched"
    result = worker.touch.apply_async((str(path),), countdown=3)
    result.revoke()
    with pytest.raises(TaskRevokedError):
        result.get(timeout=30)
    assert worker.add.delay(2, 2).get(timeout=60) == 4
    assert not path.exists()
