"""Bad input a user would type: one clear line on stderr, a documented exit code, no traceback."""

import os
import subprocess

import pytest
from conftest import AMQ_CMD, Amq

# root ignores permission bits: drop the capabilities that let it, so that a chmod bites.
AS_USER = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
           if os.getuid() == 0 else [])


def _run_local(url: str, *args: str, as_user: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMQ_URL=url)
    prefix = AS_USER if as_user else []
    return subprocess.run(prefix + AMQ_CMD + list(args), capture_output=True, env=env,
                          timeout=30, input=b"")


def _one_clean_line(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_corrupt_store_names_the_file(tmp_path):
    store = tmp_path / "corrupt.db"
    store.write_bytes(b"this is not a database" * 1000)
    proc = _run_local(f"local:{store}", "send", "q", "x")
    assert proc.returncode == 8
    err = _one_clean_line(proc)
    assert str(store) in err and "corrupt" in err
    assert store.read_bytes() == b"this is not a database" * 1000  # left untouched


def test_store_that_is_a_directory(tmp_path):
    proc = _run_local(f"local:{tmp_path}", "list", "queues")
    assert proc.returncode == 8
    assert str(tmp_path) in _one_clean_line(proc)


def test_store_in_a_folder_that_cannot_be_created():
    proc = _run_local("local:/proc/amq-test/store.db", "send", "q", "x")
    assert proc.returncode == 8
    assert "/proc/amq-test/store.db" in _one_clean_line(proc)


def test_store_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        proc = _run_local(f"local:{folder}/amq.db", "send", "q", "x", as_user=True)
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 8
    assert f"{folder}/amq.db" in _one_clean_line(proc)


def test_unreadable_store(tmp_path):
    store = tmp_path / "amq.db"
    Amq("local", f"local:{store}")("send", "q", "x")
    for f in tmp_path.iterdir():
        f.chmod(0o000)
    try:
        proc = _run_local(f"local:{store}", "list", "queues", as_user=True)
    finally:
        for f in tmp_path.iterdir():
            f.chmod(0o644)
    assert proc.returncode == 8
    assert str(store) in _one_clean_line(proc)


def test_read_only_store_file(tmp_path):
    store = tmp_path / "amq.db"
    Amq("local", f"local:{store}")("send", "q", "x")
    for f in tmp_path.iterdir():
        f.chmod(0o444)
    try:
        proc = _run_local(f"local:{store}", "send", "q", "y", as_user=True)
    finally:
        for f in tmp_path.iterdir():
            f.chmod(0o644)
    assert proc.returncode == 8
    assert str(store) in _one_clean_line(proc)
    assert Amq("local", f"local:{store}").queue("q")["messages"] == 1  # nothing corrupted


@pytest.mark.parametrize("args", [
    ["frobnicate"],
    ["send"],
    ["send", "q", "x", "--bogus"],
    ["receive", "q", "--count", "0"],
    ["receive", "q", "--count", "many"],
    ["receive"],
    ["receive", "q", "-e", "x"],
    ["receive", "q", "-k", "a"],
    ["receive", "q", "--format", "xml"],
    ["receive", "q", "--requeue", "--no-ack"],
    ["send", "q", "--lines", "--null"],
    ["send", "q", "x", "--format", "yaml"],
    ["declare", "queue"],
    ["declare", "thing", "x"],
    ["list", "things"],
    ["--url", "http://example/", "list", "queues"],
    ["--url", "local:", "list", "queues"],
])
def test_usage_errors_exit_2(amq, args):
    r = amq(*args, expect=2)
    assert r.stderr.strip()


def test_exit_codes_are_documented_in_the_readme():
    from amqcli.errors import ExitStatus
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        readme = f.read()
    for status in ExitStatus:
        assert f"| {status.value} " in readme, f"exit code {status.value} ({status.name})"
