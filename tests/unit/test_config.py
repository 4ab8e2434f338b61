"""Unit tests for amqcli.config: --url > AMQ_URL > the default local store."""

from __future__ import annotations

import os
import sys

import pytest

from amqcli.config import ENV_URL, BrokerURL, default_store_path, mask_password, resolve
from amqcli.errors import UsageError

linux_like = pytest.mark.skipif(
    not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")),
    reason="XDG_DATA_HOME only applies on Linux and the BSDs",
)


@pytest.fixture(autouse=True)
def _no_amq_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


def test_env_var_name() -> None:
    assert ENV_URL == "AMQ_URL"


@linux_like
def test_resolve_default_uses_xdg_data_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    b = resolve(None)
    assert b.scheme == "local"
    assert b.path is not None
    assert b.path.endswith(os.path.join("amq", "local.db"))
    assert b.path == os.path.join(str(tmp_path), "amq", "local.db")


@linux_like
@pytest.mark.parametrize("xdg", [None, "", "   "])
def test_resolve_default_without_xdg_uses_home(monkeypatch, tmp_path, xdg) -> None:
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve(None).path == os.path.join(str(tmp_path), ".local", "share", "amq",
                                              "local.db")


@pytest.mark.parametrize("url", [None, "", "local"])
def test_resolve_local_default(monkeypatch, tmp_path, url) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    b = resolve(url)
    assert b.scheme == "local"
    assert b.path == default_store_path()
    assert b.path.endswith(os.path.join("amq", "local.db"))


def test_resolve_empty_env_is_default(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv(ENV_URL, "")
    assert resolve(None).path == default_store_path()


@pytest.mark.parametrize(
    "url, path",
    [
        ("local:/x/y.db", "/x/y.db"),
        ("local:/tmp/amq.db", "/tmp/amq.db"),
        ("local:/x/../y.db", "/y.db"),
    ],
)
def test_resolve_local_path(url: str, path: str) -> None:
    b = resolve(url)
    assert b == BrokerURL("local", url, path)


def test_resolve_local_relative_path_made_absolute(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    b = resolve("local:rel.db")
    assert b.path == os.path.join(str(tmp_path), "rel.db")
    assert os.path.isabs(b.path)


def test_resolve_local_tilde_expanded(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve("local:~/s.db").path == os.path.join(str(tmp_path), "s.db")


def test_resolve_local_needs_path() -> None:
    with pytest.raises(UsageError):
        resolve("local:")


@pytest.mark.parametrize(
    "url, scheme",
    [
        ("amqp://u:p@h:5672/%2F", "amqp"),
        ("amqp://localhost", "amqp"),
        ("amqps://u:p@h:5671/vh", "amqps"),
        ("AMQP://h/", "amqp"),
    ],
)
def test_resolve_amqp(url: str, scheme: str) -> None:
    b = resolve(url)
    assert b.scheme == scheme
    assert b.url == url  # kept as given, password included, for the backend
    assert b.path is None


@pytest.mark.parametrize(
    "url",
    ["http://h/", "redis://h", "amqp:/h", "h:5672", "localhost", "locally", "file:///x.db",
     "://h"],
)
def test_resolve_unsupported(url: str) -> None:
    with pytest.raises(UsageError):
        resolve(url)


def test_resolve_unsupported_error_masks_password() -> None:
    with pytest.raises(UsageError) as info:
        resolve("http://user:hunter2@h/")
    assert "hunter2" not in str(info.value)
    assert "user" in str(info.value)


def test_resolve_uses_env(monkeypatch) -> None:
    monkeypatch.setenv(ENV_URL, "local:/b")
    assert resolve(None).path == "/b"
    monkeypatch.setenv(ENV_URL, "amqp://h/")
    assert resolve(None).scheme == "amqp"


def test_flag_beats_env(monkeypatch) -> None:
    monkeypatch.setenv(ENV_URL, "local:/b")
    b = resolve("local:/a")
    assert b.path == "/a"
    assert b.url == "local:/a"


def test_flag_beats_env_across_schemes(monkeypatch) -> None:
    monkeypatch.setenv(ENV_URL, "amqp://h/")
    assert resolve("local:/a").scheme == "local"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("amqp://user:secret@host/vh", "amqp://user:****@host/vh"),
        ("amqps://user:secret@host:5671/%2F", "amqps://user:****@host:5671/%2F"),
        ("amqp://user:p@ss@host/vh", "amqp://user:****@host/vh"),  # '@' in password
        ("amqp://user:@host/", "amqp://user:****@host/"),  # empty password
        ("amqp://user@host/", "amqp://user@host/"),  # no password: unchanged
        ("amqp://host/", "amqp://host/"),
        ("local:/x.db", "local:/x.db"),
    ],
)
def test_mask_password(url: str, expected: str) -> None:
    assert mask_password(url) == expected


def test_mask_password_hides_secret_keeps_user() -> None:
    masked = mask_password("amqp://user:secret@host/vh")
    assert "secret" not in masked
    assert "user" in masked
    assert "host" in masked


def test_display_is_masked() -> None:
    b = resolve("amqp://user:secret@host/vh")
    assert "secret" not in b.display
    assert "secret" in b.url


def test_mask_password_unparsable() -> None:
    assert "secret" not in mask_password("amqp://user:secret@[::1/")


# --- several hosts ---------------------------------------------------------------------

def test_multi_host_url_is_one_url_per_host() -> None:
    b = resolve("amqp://u:secret@h1:5672,h2:5673,h3/vh?heartbeat=5")
    assert b.hosts == ("amqp://u:secret@h1:5672/vh?heartbeat=5",
                       "amqp://u:secret@h2:5673/vh?heartbeat=5",
                       "amqp://u:secret@h3/vh?heartbeat=5")
    assert not b.shuffle
    assert b.display == "amqp://u:****@h1:5672,h2:5673,h3/vh?heartbeat=5"


def test_single_host_url_is_its_own_host() -> None:
    assert resolve("amqp://u:p@h:5672/%2F").hosts == ("amqp://u:p@h:5672/%2F",)
    assert resolve("amqp:///").hosts == ("amqp:///",)  # pika's default host


def test_shuffle_is_read_and_kept_from_the_hosts() -> None:
    b = resolve("amqp://u:p@h1,h2/%2F?shuffle=true&heartbeat=5")
    assert b.shuffle
    assert b.hosts == ("amqp://u:p@h1/%2F?heartbeat=5", "amqp://u:p@h2/%2F?heartbeat=5")
    assert "shuffle=true" in b.display and "p@" not in b.display
    assert not resolve("amqp://h1,h2/?shuffle=false").shuffle


def test_multi_host_tls_and_ipv6() -> None:
    b = resolve("amqps://u:p@[::1]:5671,h/vh?cacertfile=/ca.pem&verify=verify_none")
    assert b.scheme == "amqps"
    assert b.hosts == ("amqps://u:p@[::1]:5671/vh", "amqps://u:p@h/vh")
    assert b.tls == {"cacertfile": "/ca.pem", "verify": "verify_none"}


@pytest.mark.parametrize("url, why", [
    ("amqp://u:secret@h1,,h2/", "a host is empty"),
    ("amqp://u:secret@h1,/", "a host is empty"),
    ("amqp://u:secret@:5672/", "no host"),
    ("amqp://u:secret@h1:99999/", "port '99999' of h1 is not a number from 1 to 65535"),
    ("amqp://u:secret@h1:0,h2/", "port '0' of h1"),
    ("amqp://h1,h2:x/", "port 'x' of h2"),
    ("amqp://h:/", "no port after 'h:'"),
    ("amqp://[::1/", "bad host"),
    ("amqp://h?shuffle=maybe", "shuffle=maybe: use true or false"),
])
def test_bad_hosts_are_usage_errors(url: str, why: str) -> None:
    with pytest.raises(UsageError, match="bad broker URL") as info:
        resolve(url)
    assert why in str(info.value)
    assert "secret" not in str(info.value)


def test_profile_urls(monkeypatch, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[brokers.c]\nurls = ["amqp://app@r1/orders", '
                      '"amqp://app@r2:5673/orders"]\npassword = "pw"\n')
    monkeypatch.setenv("AMQ_CONFIG", str(config))
    b = resolve(broker="c")
    assert b.hosts == ("amqp://app:pw@r1/orders", "amqp://app:pw@r2:5673/orders")
    assert "pw" not in b.display
    assert b.profile == "c"


@pytest.mark.parametrize("body, why", [
    ('url = "amqp://r1"\nurls = ["amqp://r2"]', "has url and urls"),
    ("urls = []", "urls must be a list"),
    ('urls = "amqp://r1"', "urls must be a list"),
    ('urls = ["amqp://r1", "amqps://r2"]', "must all be amqp:// or all amqps://"),
])
def test_bad_profile_urls(monkeypatch, tmp_path, body: str, why: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[brokers.c]\n{body}\n")
    monkeypatch.setenv("AMQ_CONFIG", str(config))
    with pytest.raises(UsageError, match=why):
        resolve(broker="c")
