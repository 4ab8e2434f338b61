"""The local broker's vhost registry (``broker/vhosts.py``) and ``local?vhost=`` URLs."""

from __future__ import annotations

import os

import pytest

from amqcli import config, errors
from amqcli.broker.store import Store
from amqcli.broker.vhosts import Registry, file_name


def test_a_store_holds_slash_and_the_vhosts_added(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    try:
        registry = Registry(store)
        assert [v.name for v in registry.list()] == ["/"]
        assert registry.add("orders", "the orders", "a,b") is True
        assert registry.add("orders") is False
        first = registry.get("orders")
        assert first is not None and first.description == "the orders"
        broker = registry.open("orders")
        try:
            assert broker.vhost == "orders" and broker.vhost_id == first.id
            assert broker.store.path == os.path.join(f"{tmp_path}/s.db.vhosts", "orders.db")
        finally:
            broker.close()
        registry.delete("orders")
        assert not os.path.exists(os.path.join(f"{tmp_path}/s.db.vhosts", "orders.db"))
        with pytest.raises(errors.NotAllowed, match="vhost orders not found"):
            registry.open("orders")
        registry.add("orders")
        again = registry.get("orders")
        assert again is not None and again.id != first.id  # a new one, not the old
        with pytest.raises(errors.NotFound):
            registry.delete("nothing")
        with pytest.raises(errors.PreconditionFailed):
            registry.delete("/")
    finally:
        store.close()


def test_file_names_are_safe_for_any_vhost_name():
    assert file_name("orders") == "orders.db"
    assert "/" not in file_name("a/b") and file_name("a/b") != file_name("a_b")
    assert file_name("..") .startswith("h-")  # never a name the folder gives meaning to
    long = file_name("é" * 120)
    assert long.startswith("h-") and len(long) < 100


@pytest.mark.parametrize(("text", "vhost"), [
    ("local", "/"), ("local?vhost=orders", "orders"), ("local?vhost=%2F", "/"),
    ("local:/tmp/x.db?vhost=a%20b", "a b"), ("local:/tmp/x.db", "/")])
def test_local_urls_name_their_vhost(text, vhost):
    assert config.parse_url(text).vhost == vhost


@pytest.mark.parametrize("text", ["local?vhost=", "local?x=1", "local:/tmp/x?vhost=a&b=c",
                                  "local?vhost=a&vhost=b"])
def test_bad_local_urls_are_usage_errors(text):
    with pytest.raises(errors.UsageError):
        config.parse_url(text)
