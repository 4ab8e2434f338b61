"""The wire protocol byte for byte, with a raw client: negotiation, authentication, and
the exact reply codes, texts and method ids of channel and connection errors. Where
RabbitMQ 3.10 behaves the same, each case runs against both brokers."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import pytest
from pamqp import body, encode, frame, header, heartbeat
from pamqp import commands as C

from .rawclient import PROTOCOL_HEADER, Closed, RawClient, method_frame
from .servers import Served, Target, start_server

Steps = Callable[[RawClient], None]


def opened(c: RawClient) -> None:
    c.handshake()
    c.open_channel(1)


def publish(exchange: str, key: str, props: C.Basic.Properties | None = None) -> Steps:
    return lambda c: (opened(c), c.publish(1, exchange, key, b"x", props))


def send(method: object, channel: int = 1, setup: Steps = opened) -> Steps:
    return lambda c: (setup(c), c.send(method, channel))


def raw(data: bytes, setup: Steps = RawClient.handshake) -> Steps:
    return lambda c: (setup(c), c.send_raw(data))


CONNECTION_ERRORS: dict[str, tuple[Steps, int, str, int, int]] = {
    "second channel.open": (send(C.Channel.Open()), 504,
                            "CHANNEL_ERROR - second 'channel.open' seen", 20, 10),
    "method before channel.open": (send(C.Queue.Declare(queue="q"), setup=RawClient.handshake),
                                   504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10),
    "channel.flow active=false": (send(C.Channel.Flow(False)), 540,
                                  "NOT_IMPLEMENTED - active=false", 20, 20),
    "bad frame type": (raw(struct.pack(">BHI", 9, 0, 0) + b"\xce"), 501,
                       "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame", 0, 0),
    "frame-end missing": (raw(frame.marshal(C.Channel.Open(), 1)[:-1] + b"\x00"), 501,
                          ("FRAME_ERROR - type 1, all octets = <<0,20,0,10,1,48>>: "
                          "{invalid_frame_end_marker,0}"), 0, 0),
    "frame too large": (raw(struct.pack(">BHI", 3, 1, 200000) + b"x" * 200001), 501,
                        ("FRAME_ERROR - type 3, all octets = <<>>: "
                        "{frame_too_large,200000,131064}"), 0, 0),
    "method frame too short": (raw(b"\x01\x00\x01\x00\x00\x00\x02ab\xce"), 501,
                               'FRAME_ERROR - type 1, all octets = <<"ab">>: unknown_frame',
                               0, 0),
    "undecodable method": (raw(method_frame(20, 10, b"", 1)), 501,
                           "FRAME_ERROR - cannot decode <<>>", 20, 10),
    "heartbeat on a channel": (raw(struct.pack(">BHI", 8, 1, 0) + b"\xce"), 505,
                               "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0),
    "header without publish": (send(header.ContentHeader(0, 1, None)), 505,
                               ("UNEXPECTED_FRAME - expected method frame, got non method "
                               "frame instead"), 0, 0),
    "body without publish": (send(body.ContentBody(b"x")), 505,
                             ("UNEXPECTED_FRAME - expected method frame, got non method frame "
                             "instead"), 0, 0),
    "method instead of header": (
        lambda c: (opened(c), c.send(C.Basic.Publish(routing_key="x"), 1),
                   c.send(C.Basic.Qos(), 1)), 505,
        ("UNEXPECTED_FRAME - expected content header for class 60, got non content header "
        "frame instead"), 60, 40),
    "content on channel 0": (send(header.ContentHeader(0, 1, None), 0, RawClient.handshake),
                             505, ("UNEXPECTED_FRAME - type 2, all octets = "
                             "<<0,60,0,0,0,0,0,0,0,0,0,1,0,0>>"), 0, 0),
    "channel method on channel 0": (send(C.Queue.Declare(queue="x"), 0, RawClient.handshake),
                                    504, ("CHANNEL_ERROR - unexpected method in connection "
                                    "state running"), 50, 10),
    "connection.open twice": (send(C.Connection.Open(virtual_host="/"), 0,
                                   RawClient.handshake), 504,
                              "CHANNEL_ERROR - unexpected method in connection state running",
                              10, 40),
    "unexpected channel.close-ok": (send(C.Channel.CloseOk()), 503,
                                    "COMMAND_INVALID - unimplemented method", 20, 41),
    "prefetch_size": (send(C.Basic.Qos(prefetch_size=5)), 540,
                      "NOT_IMPLEMENTED - prefetch_size!=0 (5)", 60, 10),
    "immediate": (lambda c: (opened(c), c.send(C.Basic.Publish(routing_key="x", immediate=True),
                                               1), c.send(header.ContentHeader(0, 0, None), 1)),
                  540, "NOT_IMPLEMENTED - immediate=true", 60, 40),
    "recover requeue=false": (send(C.Basic.Recover(False)), 540,
                              "NOT_IMPLEMENTED - requeue=false", 60, 110),
    "consumer tag reuse": (
        lambda c: (opened(c), c.send(C.Queue.Declare(queue="", exclusive=True), 1),
                   c.expect(C.Queue.DeclareOk),
                   c.send(C.Basic.Consume(queue="", consumer_tag="a"), 1),
                   c.expect(C.Basic.ConsumeOk),
                   c.send(C.Basic.Consume(queue="", consumer_tag="a"), 1)), 530,
        "NOT_ALLOWED - attempt to reuse consumer tag 'a'", 60, 20),
    "vhost not found": (lambda c: c.handshake(vhost="nope", open_=False) or
                        c.send(C.Connection.Open(virtual_host="nope")), 530,
                        "NOT_ALLOWED - vhost nope not found", 10, 40),
    "bad password": (
        lambda c: (c.send_raw(PROTOCOL_HEADER), c.expect(C.Connection.Start),
                   c.send(C.Connection.StartOk(
                       client_properties={"capabilities": {"authentication_failure_close": True}},
                       mechanism="PLAIN", response="\0guest\0wrong"))), 403,
        ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details "
        "see the broker logfile."), 0, 0),
}

CHANNEL_ERRORS: dict[str, tuple[Steps, int, str, int, int]] = {
    "bind with no declared queue": (send(C.Queue.Bind(queue="", exchange="amq.direct")), 404,
                                    "NOT_FOUND - no previously declared queue", 50, 20),
    "consume with no declared queue": (send(C.Basic.Consume(queue="")), 404,
                                       "NOT_FOUND - no previously declared queue", 60, 20),
    "get from a missing queue": (send(C.Basic.Get(queue="missing-q")), 404,
                                 "NOT_FOUND - no queue 'missing-q' in vhost '/'", 60, 70),
    "commit without select": (send(C.Tx.Commit()), 406,
                              "PRECONDITION_FAILED - channel is not transactional", 90, 20),
    "confirm after tx": (lambda c: (opened(c), c.send(C.Tx.Select(), 1), c.expect(C.Tx.SelectOk),
                                    c.send(C.Confirm.Select(), 1)), 406,
                         "PRECONDITION_FAILED - cannot switch from tx to confirm mode", 85, 10),
    "tx after confirm": (lambda c: (opened(c), c.send(C.Confirm.Select(), 1),
                                    c.expect(C.Confirm.SelectOk), c.send(C.Tx.Select(), 1)), 406,
                         "PRECONDITION_FAILED - cannot switch from confirm to tx mode", 90, 10),
    "unknown delivery tag": (send(C.Basic.Ack(5)), 406,
                             "PRECONDITION_FAILED - unknown delivery tag 5", 60, 80),
    "user_id of another user": (publish("", "x", C.Basic.Properties(user_id="bob")), 406,
                                ("PRECONDITION_FAILED - user_id property set to 'bob' but "
                                "authenticated user was 'guest'"), 60, 40),
    "bad expiration": (publish("", "x", C.Basic.Properties(expiration="abc")), 406,
                       "PRECONDITION_FAILED - invalid expiration 'abc': no_integer", 60, 40),
    "publish to a missing exchange": (publish("nope-x", "x"), 404,
                                      "NOT_FOUND - no exchange 'nope-x' in vhost '/'", 60, 40),
}


def client(target: Target | Served) -> RawClient:
    return RawClient(target.host, target.port)


@pytest.mark.parametrize("case", list(CONNECTION_ERRORS))
def test_connection_errors(broker: Target, case: str) -> None:
    steps, code, text, class_id, method_id = CONNECTION_ERRORS[case]
    c = client(broker)
    try:
        steps(c)
        close = c.expect(C.Connection.Close, 0)
        assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == \
            (code, text, class_id, method_id)
        c.send(C.Connection.CloseOk())
        assert c.closed_silently(timeout=6)
    finally:
        c.close()


@pytest.mark.parametrize("case", list(CHANNEL_ERRORS))
def test_channel_errors(broker: Target, case: str) -> None:
    steps, code, text, class_id, method_id = CHANNEL_ERRORS[case]
    c = client(broker)
    try:
        steps(c)
        close = c.expect(C.Channel.Close, 1)
        assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == \
            (code, text, class_id, method_id)
        c.send(C.Basic.Qos(), 1)  # dropped: the channel is closing
        c.send(C.Channel.CloseOk(), 1)
        c.open_channel(1)  # the number is free again, the connection fine
        c.send(C.Channel.Flow(True), 1)
        assert c.expect(C.Channel.FlowOk, 1).active is True
    finally:
        c.close()


def test_capabilities_and_tune(broker: Target) -> None:
    c = client(broker)
    c.handshake()
    caps = c.server_properties["capabilities"]
    for name in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                 "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                 "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps[name] is True, name
    assert (c.tune.channel_max, c.tune.frame_max, c.tune.heartbeat) == (2047, 131072, 60)
    c.send(C.Connection.UpdateSecret("guest", "token"))
    c.expect(C.Connection.UpdateSecretOk, 0)
    c.close()


def test_login_refused_without_capability_closes_the_socket(broker: Target) -> None:
    c = client(broker)
    c.send_raw(PROTOCOL_HEADER)
    c.expect(C.Connection.Start)
    c.send(C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                response="\0guest\0wrong"))
    assert c.closed_silently(timeout=6)


def test_wrong_protocol_header_gets_ours(served: Served) -> None:
    c = client(served)
    c.send_raw(b"GET / HTTP/1.1\r\n\r\n")
    assert c.read()[1] == PROTOCOL_HEADER
    assert c.closed_silently()


@pytest.mark.parametrize("tune, text", [
    ((2047, 1000), "negotiated frame_max = 1000 is lower than the minimum allowed value (4096)"),
    ((2047, 0), "negotiated frame_max = 0 is higher than the maximum allowed value (131072)"),
    ((5000, 131072), ("negotiated channel_max = 5000 is higher than the maximum allowed value "
                     "(2047)")),
])
def test_tune_negotiation(served: Served, tune: tuple[int, int], text: str) -> None:
    c = client(served)
    c.handshake(channel_max=tune[0], frame_max=tune[1], open_=False)
    if tune[1] == 0:  # handshake() sends 0 as "the server's": send the real 0 again
        pass
    close = c.expect(C.Connection.Close, 0)
    assert (close.reply_code, close.reply_text) == (530, "NOT_ALLOWED - " + text)


def test_channel_max(broker: Target) -> None:
    c = client(broker)
    c.handshake(channel_max=2)
    c.open_channel(1)
    c.open_channel(7)  # numbers are free; only the count is limited, as in RabbitMQ
    c.send(C.Channel.Open(), 3)
    close = c.expect(C.Connection.Close, 0)
    assert (close.reply_code, close.reply_text) == (
        530, ("NOT_ALLOWED - number of channels opened (2) has reached the negotiated "
             "channel_max (2)"))
    c.close()


def test_amqplain_and_configured_users(tmp_path) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "users"
    users.write_text("# name:password\nbob:b0b:secret\n")
    server = start_server(str(tmp_path / "amq.db"), tmp_path / "log", "--users-file",
                          str(users), "--user", "carol:pw", "--no-guest")
    try:
        table = encode.field_table({"LOGIN": "bob", "PASSWORD": "b0b:secret"})[4:]
        for mechanism, response, ok in (
                ("AMQPLAIN", table.decode(), True), ("PLAIN", "\0carol\0pw", True),
                ("PLAIN", "\0guest\0guest", False), ("PLAIN", "\0carol\0bad", False)):
            c = client(server)
            c.send_raw(PROTOCOL_HEADER)
            c.expect(C.Connection.Start)
            c.send(C.Connection.StartOk(
                client_properties={"capabilities": {"authentication_failure_close": True}},
                mechanism=mechanism, response=response))
            reply = c.read_method()[1]
            assert isinstance(reply, C.Connection.Tune if ok else C.Connection.Close), reply
            if not ok:
                assert reply.reply_code == 403
            c.close()
    finally:
        assert server.stop() == 0
    assert "login refused" in server.log()


def test_guest_only_from_loopback() -> None:
    from amqcli.server.auth import LoginRefused, Users
    users = Users({"bob": "pw"})
    assert users.check("PLAIN", "\0guest\0guest", "127.0.0.1") == "guest"
    assert users.check("PLAIN", "\0guest\0guest", "::1") == "guest"
    assert users.check("PLAIN", "\0bob\0pw", "192.0.2.7") == "bob"
    with pytest.raises(LoginRefused, match="only connect via localhost"):
        users.check("PLAIN", "\0guest\0guest", "192.0.2.7")


def test_heartbeats(served: Served) -> None:
    c = client(served)
    c.handshake(heartbeat_=1)
    started = time.monotonic()
    kinds = []
    try:
        while time.monotonic() - started < 10:
            kinds.append(type(c.read(timeout=10)[1]))
    except Closed:
        pass
    took = time.monotonic() - started
    assert heartbeat.Heartbeat in kinds  # the server sends them when idle...
    assert 1.5 <= took <= 6  # ...and closes a client that sends none for two intervals
    c.close()
