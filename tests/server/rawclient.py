"""A raw AMQP 0-9-1 client for protocol tests: send exact frames, read exact replies.

Frames are built and read with pamqp, so tests can send what no well-behaved client
would (bad frame types, wrong sizes, methods out of order) and see the broker's answer
byte for byte. Used against ``amq broker serve`` and, to learn the reference behaviour,
against RabbitMQ.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from pamqp import body, commands, frame, header, heartbeat

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class Closed(Exception):
    """The server closed the socket."""


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.server_properties: dict[str, Any] = {}
        self.tune: Any = None

    # --- sending --------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, method: Any, channel: int = 0) -> None:
        self.sock.sendall(frame.marshal(method, channel))

    def publish(self, channel: int, exchange: str, routing_key: str, payload: bytes,
                properties: Any = None, mandatory: bool = False) -> None:
        self.sock.sendall(
            frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                                 mandatory=mandatory), channel)
            + frame.marshal(header.ContentHeader(0, len(payload), properties), channel)
            + (frame.marshal(body.ContentBody(payload), channel) if payload else b""))

    # --- receiving ------------------------------------------------------------------

    def read(self, timeout: float = 5.0) -> tuple[int, Any]:
        """The next frame (channel, frame object); ``Closed`` when the socket closes."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 7:
                if self.buffer.startswith(b"AMQP") and len(self.buffer) >= 8:
                    data, self.buffer = self.buffer[:8], self.buffer[8:]
                    return 0, data
                size = struct.unpack(">I", self.buffer[3:7])[0]
                if len(self.buffer) >= size + 8:
                    used, channel, value = frame.unmarshal(self.buffer)
                    self.buffer = self.buffer[used:]
                    return channel, value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                raise Closed(self.buffer)
            self.buffer += data

    def read_method(self, timeout: float = 5.0) -> tuple[int, Any]:
        """The next frame that is not a heartbeat."""
        while True:
            channel, value = self.read(timeout)
            if not isinstance(value, heartbeat.Heartbeat):
                return channel, value

    def expect(self, cls: type, channel: int | None = None, timeout: float = 5.0) -> Any:
        got_channel, value = self.read_method(timeout)
        assert isinstance(value, cls), f"expected {cls.__name__}, got {value.name}: " \
            f"{dict(value) if hasattr(value, '__slots__') else value!r}"
        if channel is not None:
            assert got_channel == channel, (got_channel, channel)
        return value

    def closed_silently(self, timeout: float = 5.0) -> bool:
        """True if the server closes the socket with no more frames than heartbeats."""
        try:
            self.read_method(timeout)
        except Closed:
            return True
        return False

    # --- handshake ------------------------------------------------------------------

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/",
                  capabilities: dict[str, Any] | None = None, channel_max: int = 0,
                  frame_max: int = 131072, heartbeat_: int = 0, open_: bool = True) -> None:
        self.send_raw(PROTOCOL_HEADER)
        start = self.expect(commands.Connection.Start)
        self.server_properties = start.server_properties
        caps = {"authentication_failure_close": True, "consumer_cancel_notify": True,
                "basic.nack": True, "publisher_confirms": True}
        caps.update(capabilities or {})
        self.send(commands.Connection.StartOk(
            client_properties={"product": "rawclient", "capabilities": caps},
            mechanism="PLAIN", response=f"\0{user}\0{password}", locale="en_US"))
        self.tune = self.expect(commands.Connection.Tune)
        value = self.tune
        self.send(commands.Connection.TuneOk(channel_max or value.channel_max,
                                             frame_max, heartbeat_))
        if open_:
            self.send(commands.Connection.Open(virtual_host=vhost))
            self.expect(commands.Connection.OpenOk)

    def open_channel(self, number: int = 1) -> None:
        self.send(commands.Channel.Open(), number)
        self.expect(commands.Channel.OpenOk, number)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def method_frame(class_id: int, method_id: int, payload: bytes, channel: int) -> bytes:
    """A method frame for any (class, method), known to the spec or not."""
    data = struct.pack(">HH", class_id, method_id) + payload
    return struct.pack(">BHI", 1, channel, len(data)) + data + b"\xce"
