"""`amq broker serve --max-connections/--max-channels`: RabbitMQ's 530 texts past the
limits, and `channel_max` in connection.tune."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pika.exceptions
import pytest
from pamqp import commands

from .rawclient import RawClient
from .servers import Served, start_server


def test_past_max_connections_connection_open_gets_530(tmp_path: Path):
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log",
                          "--max-connections", "2")
    try:
        params = server.params(connection_attempts=1)
        first, second = pika.BlockingConnection(params), pika.BlockingConnection(params)
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
            pika.BlockingConnection(params)
        assert "(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'guest': " \
            "connection limit (2) is reached\"" in str(info.value)
        first.close()
        third = pika.BlockingConnection(params)  # room again
        third.channel().queue_declare("after-the-limit")
        third.close()
        second.close()
    finally:
        assert server.stop() == 0


@contextmanager
def raw_client(tmp_path: Path, *args: str) -> Iterator[tuple[Served, RawClient]]:
    """A server with these options and a raw client of it, both stopped after."""
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "server.log", *args)
    client = RawClient(server.host, server.port)
    try:
        yield server, client
    finally:
        client.close()
        assert server.stop() == 0


def test_max_channels_is_the_channel_max_of_tune(tmp_path: Path):
    with raw_client(tmp_path, "--max-channels", "2") as (_server, client):
        client.handshake()
        assert client.tune.channel_max == 2
        client.open_channel(1)
        client.open_channel(2)
        client.send(commands.Channel.Open(), 3)
        close = client.expect(commands.Connection.Close, 0)
        assert (close.reply_code, close.reply_text) == (
            530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated "
                 "channel_max (2)")


def test_a_client_asking_for_more_channels_than_offered_is_refused(tmp_path: Path):
    with raw_client(tmp_path, "--max-channels", "2") as (_server, client):
        client.handshake(channel_max=5, open_=False)
        client.send(commands.Connection.Open(virtual_host="/"))
        close = client.expect(commands.Connection.Close, 0)
        assert (close.reply_code, close.reply_text) == (
            530, "NOT_ALLOWED - negotiated channel_max = 5 is higher than the maximum "
                 "allowed value (2)")


def test_below_the_disk_free_limit_publishers_are_blocked(tmp_path: Path):
    """A limit above the free space sets the alarm off at once: a client is told
    connection.blocked "low on disk", and once it publishes it is read no further (its
    message is not routed, and not dropped: the client still holds it); a consumer goes
    on."""
    with raw_client(tmp_path, "--disk-free-limit", "1000000TB") as (server, client):
        server.amq("send", "blocked-q", "before the alarm")
        client.handshake(capabilities={"connection.blocked": True})
        assert client.expect(commands.Connection.Blocked, 0).reason == "low on disk"
        client.open_channel(1)
        client.publish(1, "", "blocked-q", b"the one that blocks")  # taken, as in RabbitMQ
        time.sleep(0.3)
        client.publish(1, "", "blocked-q", b"held")
        consumer = pika.BlockingConnection(server.params())
        ch = consumer.channel()
        bodies = [ch.basic_get("blocked-q", auto_ack=True)[2] for _ in range(3)]
        consumer.close()
        assert bodies[0] == b"before the alarm"
        assert b"held" not in bodies and bodies[-1] is None
    assert "disk alarm set: free disk space" in server.log()


def test_a_bad_disk_free_limit_is_one_line(tmp_path: Path):
    import subprocess

    from .servers import AMQ_CMD
    proc = subprocess.run(AMQ_CMD + ["broker", "serve", "--memory", "--disk-free-limit",
                                     "lots"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2
    assert "--disk-free-limit: expected BYTES, or a number with kB, MB, GB or TB, got " \
        "'lots'" in proc.stderr


def test_the_alarm_goes_on_below_the_limit_and_off_above_it(tmp_path: Path):
    import asyncio

    from amqcli.server import alarm

    free = [10]
    told: list[bool] = []

    class Conn:
        def alarm_changed(self, on: bool) -> None:
            told.append(on)

    async def run() -> None:
        watch = alarm.DiskAlarm(str(tmp_path / "amq.db"), 100, free=lambda _p: free[0])
        watch.start({Conn()})  # type: ignore[arg-type]
        assert watch.on
        free[0] = 1000
        await asyncio.sleep(alarm.INTERVAL + 0.2)
        assert not watch.on
        watch.stop()

    asyncio.run(run())
    assert told == [True, False]
    assert alarm.parse_limit("50MB") == 50_000_000
    assert alarm.parse_limit("2GiB") == 2 * 1024**3
    assert alarm.parse_limit("123") == 123
