"""pika's private parts that amq uses: the one module that reaches into them.

Checked against pika 1.3-1.4 (last checked: 1.4.4); ``pyproject.toml`` pins
``pika>=1.3,<1.5``. ``tests/unit/test_shims.py`` fails, naming the missing attribute, when
an installed pika lacks one of them (``tests/unit/test_pika_shim.py`` checks the codec's).

**Field tables as RabbitMQ carries them.** pika cannot encode a float
(``UnsupportedAMQPFieldException``, shown raw as ``None None - ([None, b'\\x01', b'f'],
1.5)``), decodes floats and doubles as integers (``long(struct.unpack(...))``: 1.5 arrives
as 1), normalises decimals on the way out (``1.50`` leaves as ``1.5``) and lets
``struct.error`` escape for integers past 64 bits or timestamps before 1970. The local
broker keeps all of these (``amqp/codec.py``), so without this module the same message
reads differently on the two brokers. It replaces, once, by ``install()`` (idempotent):

- ``pika.data.encode_table`` / ``pika.data.decode_table``: what ``pika.spec`` calls for
  every table (``BasicProperties.headers``, declare/bind ``arguments``), looked up as
  attributes of ``pika.data`` at each call;
- ``pika.data.encode_value`` / ``pika.data.decode_value``: what those two call for each
  value, looked up as globals of ``pika.data``, so nested tables and arrays go through the
  replacements too. Kinds this module does not change are decoded by pika's own function.

Values that cannot be encoded raise ``FieldError`` (a ``ValueError``) that says which
header or argument and why, before anything is written to the socket.

**The blocking adapter's insides**, for publishing in bulk and with many confirms
outstanding (``backends/rabbitmq.py``), each behind one function here:

- ``BlockingConnection._impl`` (the ``pika.connection.Connection`` underneath), its
  ``_body_max_length`` (the body bytes a frame carries, set at ``connection.tune``) and
  ``_output_marshaled_frames(frames)`` (write already framed bytes): ``body_frame_size``,
  ``write_frames``;
- ``BlockingConnection._flush_output(*waiters)``: pika's own I/O loop of its blocking
  methods, returning once a waiter holds: ``wait_until``;
- ``BlockingChannel._impl`` (the ``pika.channel.Channel``), whose ``confirm_delivery``
  takes an ``ack_nack_callback`` (the blocking one only counts): ``select_confirms``;
- ``BlockingChannel._closing_reason``: the exception a closed channel was closed by:
  ``closing_reason``;
- ``BlockingConnection._impl.server_properties``: what the broker told of itself in
  ``connection.start`` (version, cluster name), for ``amq status``: ``server_properties``;
- ``BlockingConnection._impl._on_data_available`` (replaced per connection, for
  consumers), with its ``_frame_buffer``, ``_process_frame``, ``bytes_received`` and
  ``frames_received``, and ``BlockingConnection._request_channel_dispatch``:
  ``Deliveries``, which reads a consumer's messages without pika's frame objects.
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
import struct
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pika.connection
import pika.data
import pika.frame

from ..amqp.codec import INT64, TIMESTAMP, amqp_decimal, shown

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

INT32 = (-(2**31), 2**31 - 1)
_PIKA = {name: getattr(pika.data, name) for name in ("encode_value", "encode_table",
                                                     "decode_value")}
_pika_decode_value = _PIKA["decode_value"]
_installed: list[bool] = []


class FieldError(ValueError):
    """A table value AMQP cannot carry: ``path`` (``a.b[0]``) says which, ``problem`` why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"'{path}': {problem}" if path else problem)
        self.path, self.problem = path, problem


def _check(value: int, bounds: tuple[int, int], where: str, text: str) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise FieldError(where, text)


def encode_value(pieces: list[bytes], value: Any, where: str = "") -> int:
    """Append one typed field value (type octet first); its size in bytes."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")  # lone surrogates: argv's bytes
        pieces += (struct.pack(">cI", b"S", len(value)), value)
        return 5 + len(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        pieces += (struct.pack(">cI", b"x", len(value)), value)
        return 5 + len(value)
    if isinstance(value, bool):
        pieces.append(struct.pack(">cB", b"t", value))
        return 2
    if isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            pieces.append(struct.pack(">ci", b"I", value))
            return 5
        _check(value, INT64, where, f"integer {value} does not fit in 64 bits")
        pieces.append(struct.pack(">cq", b"l", value))
        return 9
    if isinstance(value, float):
        pieces.append(struct.pack(">cd", b"d", value))
        return 9
    if isinstance(value, decimal.Decimal):
        return _encode_decimal(pieces, value, where)
    if isinstance(value, dt.datetime):
        stamp = calendar.timegm(value.utctimetuple())
        _check(stamp, TIMESTAMP, where, f"timestamp {stamp} is out of range")
        pieces.append(struct.pack(">cQ", b"T", stamp))
        return 9
    if isinstance(value, dict):
        pieces.append(b"F")
        return 1 + encode_table(pieces, value, where)
    if isinstance(value, (list, tuple)):
        items: list[bytes] = []
        for i, item in enumerate(value):
            encode_value(items, item, f"{where}[{i}]")
        data = b"".join(items)
        pieces += (struct.pack(">cI", b"A", len(data)), data)
        return 5 + len(data)
    if value is None:
        pieces.append(b"V")
        return 1
    raise FieldError(where, f"AMQP has no field type for {value!r}")


def _encode_decimal(pieces: list[bytes], value: decimal.Decimal, where: str) -> int:
    """Places and unscaled value exactly as given (pika would normalise 1.50 to 1.5)."""
    try:
        value = amqp_decimal(value)
    except ValueError as err:
        raise FieldError(where, str(err)) from None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # amqp_decimal refuses NaN and infinities
    places = max(0, -exponent)
    unscaled = int(value.scaleb(places, decimal.Context(prec=20)))
    pieces.append(struct.pack(">cBi", b"D", places, unscaled))
    return 6


def encode_table(pieces: list[bytes], table: dict[str, Any] | None, where: str = "") -> int:
    """Append a field table (its size first); the size in bytes, as pika's does."""
    size_at = len(pieces)
    pieces.append(b"")
    size = 0
    for key, value in (table or {}).items():
        path = f"{where}.{shown(key)}" if where else shown(key)
        name = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else bytes(key)
        if len(name) > 255:
            raise FieldError(path[:60] + "...", "a name is longer than 255 bytes")
        pieces += (struct.pack("B", len(name)), name)
        size += 1 + len(name) + encode_value(pieces, value, path)
    pieces[size_at] = struct.pack(">I", size)
    return size + 4


def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
    """One typed field value; floats and doubles as floats (pika makes them integers)."""
    kind = encoded[offset:offset + 1]
    if kind == b"d":
        return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
    if kind == b"f":
        return struct.unpack_from(">f", encoded, offset + 1)[0], offset + 5
    return _pika_decode_value(encoded, offset)  # its arrays and tables come back here


def table_bytes(table: dict[str, Any] | None) -> bytes:
    """A table encoded (``FieldError`` if it cannot be): checks arguments before pika's
    RPC machinery sees them, since an exception in the middle of it wedges the channel."""
    pieces: list[bytes] = []
    encode_table(pieces, table)
    return b"".join(pieces)


def install() -> None:
    """Put this module's codec into pika (once)."""
    if _installed:
        return
    pika.data.encode_value = encode_value
    pika.data.encode_table = encode_table
    pika.data.decode_value = decode_value
    _installed.append(True)


def uninstall() -> None:
    """Give pika its own codec back: for tests that share a process with other pika users
    (``RabbitMQBackend`` installs the shim again when it connects)."""
    for name, function in _PIKA.items():
        setattr(pika.data, name, function)
    _installed.clear()


# --- the blocking adapter's insides ----------------------------------------------------

def body_frame_size(connection: BlockingConnection) -> int:
    """The most body bytes one frame carries on this ``BlockingConnection`` (tuned)."""
    size: int = connection._impl._body_max_length
    return size


def write_frames(connection: BlockingConnection, data: bytes) -> None:
    """Hand already framed bytes to the connection's output, as pika writes its own."""
    connection._impl._output_marshaled_frames([data])


def wait_until(connection: BlockingConnection, condition: Callable[[], bool]) -> None:
    """Process the connection's I/O until ``condition()`` holds (its callbacks run)."""
    connection._flush_output(condition)


def select_confirms(channel: BlockingChannel, on_ack_nack: Callable[[pika.frame.Method], None],
                    on_selected: Callable[[pika.frame.Method], None]) -> None:
    """``confirm.select`` on a ``BlockingChannel`` without its per-message bookkeeping:
    ``on_ack_nack(frame)`` for each ``basic.ack``/``basic.nack``, ``on_selected`` once."""
    channel._impl.confirm_delivery(ack_nack_callback=on_ack_nack, callback=on_selected)


def server_properties(connection: BlockingConnection) -> dict[str, Any]:
    """What the broker said of itself in ``connection.start`` (product, version,
    cluster_name, ...), as pika decoded it."""
    props = connection._impl.server_properties
    return dict(props) if isinstance(props, dict) else {}


def closing_reason(channel: BlockingChannel) -> BaseException | None:
    """The exception a closed ``BlockingChannel`` was closed by (None if none is known)."""
    reason = getattr(channel, "_closing_reason", None)
    return reason if isinstance(reason, BaseException) else None


# --- deliveries without pika's frame objects ---------------------------------------------

_FRAME_HEAD = struct.Struct(">BHL")  # type, channel, size
_DELIVER = struct.pack(">HH", 60, 60)  # basic.deliver's class and method
_BODY_SIZE = struct.Struct(">Q")  # a content header's body size (after class and weight)
_TAG_FLAGS = struct.Struct(">QB")  # basic.deliver's delivery tag and its bits
_FRAME_END = 0xCE


class Deliveries:
    """A consumer channel's ``basic.deliver`` frames, with their header and body frames,
    read straight from the connection's input: each whole message becomes one call
    ``sink(delivery_tag, redelivered, exchange, routing_key, properties, body)``, where
    ``properties`` is the header frame's encoded property list (bytes, for the caller to
    decode once per distinct value). Every other frame goes to pika as it came.

    pika turns each frame into objects (a ``Method``, a ``Header`` with decoded
    properties, a ``Body``), copies the rest of its input buffer after each frame, and
    passes a message through three callbacks and an event queue: most of the time of a
    bulk consumer. ``install`` replaces the connection's ``_on_data_available`` (what
    its transport calls with each read) by one that reads frames in place; it keeps
    pika's counters (``bytes_received``, which its heartbeat checker watches,
    ``frames_received``) and asks ``process_data_events`` to return when messages came
    (``_request_channel_dispatch`` with the channel's negative number, as pika's own
    consumers do). Installed before ``basic.consume``, so that no delivery of the
    channel ever goes through pika (whose deliveries would come later, out of order).
    """

    def __init__(self, channel: BlockingChannel,
                 sink: Callable[[int, bool, Any, Any, bytes, bytes], None]) -> None:
        self.connection = channel.connection
        self.number: int = channel.channel_number
        self.sink = sink
        self._method: tuple[int, bool, Any, Any] | None = None  # a deliver awaiting content
        self._properties = b""
        self._left = 0  # body bytes still to come
        self._pieces: list[bytes] = []
        self._names: dict[bytes, Any] = {}  # exchanges and routing keys, as received

    def install(self) -> None:
        impl = self.connection._impl
        routes = impl.__dict__.get("_amq_deliveries")
        if routes is None:
            routes = impl._amq_deliveries = _Routes(self.connection)
            impl._on_data_available = partial(_on_data_available, impl, routes)
        routes[self.number] = self

    def remove(self) -> None:
        routes = self.connection._impl.__dict__.get("_amq_deliveries")
        if routes is not None and routes.get(self.number) is self:
            del routes[self.number]

    def frame(self, kind: int, data: bytes, start: int, end: int) -> bool:
        """Take one frame of this channel (its payload is ``data[start:end]``): True when
        it was a delivery's, False to leave it to pika."""
        if kind == 3:
            if self._method is None:
                return False
            self._pieces.append(data[start:end])
            self._left -= end - start
            if self._left <= 0:
                self._emit()
            return True
        if kind == 2:
            if self._method is None:
                return False
            self._left = _BODY_SIZE.unpack_from(data, start + 4)[0]
            self._properties = data[start + 12:end]
            if not self._left:
                self._emit()
            return True
        if kind != 1 or self._method is not None or data[start:start + 4] != _DELIVER:
            return False
        pos = start + 5 + data[start + 4]  # past the consumer tag: one consumer a channel
        tag, flags = _TAG_FLAGS.unpack_from(data, pos)
        names = self._names
        pos += 9
        n = data[pos]
        raw = data[pos:pos + 1 + n]
        exchange = names.get(raw)
        if exchange is None:
            exchange = self._name(raw)
        pos += 1 + n
        n = data[pos]
        raw = data[pos:pos + 1 + n]
        routing_key = names.get(raw)
        if routing_key is None:
            routing_key = self._name(raw)
        self._method = (tag, flags & 1 == 1, exchange, routing_key)
        return True

    def _name(self, raw: bytes) -> Any:
        """A short string (its length octet first) decoded as pika decodes it, kept."""
        names = self._names
        if len(names) >= 1024:  # a routing key per message: keep a few
            names.clear()
        name = names[raw] = pika.data.decode_short_string(raw, 0)[0]
        return name

    def _emit(self) -> None:
        assert self._method is not None
        tag, redelivered, exchange, routing_key = self._method
        pieces, self._method, self._pieces = self._pieces, None, []
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.sink(tag, redelivered, exchange, routing_key, self._properties, body)


class _Routes(dict):  # type: ignore[type-arg]
    """A connection's ``Deliveries`` by channel number, and the ``BlockingConnection``."""

    def __init__(self, blocking: BlockingConnection) -> None:
        super().__init__()
        self.blocking = blocking


_pika_on_data_available = pika.connection.Connection._on_data_available


def _on_data_available(impl: Any, routes: _Routes, data_in: bytes) -> None:
    """pika's ``Connection._on_data_available``, reading frames in place, deliveries of
    the channels in ``routes`` taken by their ``Deliveries``."""
    buf = impl._frame_buffer + data_in if impl._frame_buffer else data_in
    impl._frame_buffer = b""
    pos, size, delivered, taken, frames = 0, len(buf), set(), 0, 0
    unpack, get = _FRAME_HEAD.unpack_from, routes.get
    last = None
    try:
        while size - pos >= 7:
            kind, number, length = unpack(buf, pos)
            if kind > 8 and buf.startswith(b"AMQP", pos):  # a protocol header: pika's
                rest, pos = buf[pos:], size
                _pika_on_data_available(impl, rest)
                break
            end = pos + 8 + length
            if end > size:
                break
            route = get(number) if number else None
            if route is not None and buf[end - 1] == _FRAME_END and \
                    route.frame(kind, buf, pos + 7, end - 1):
                taken += end - pos
                frames += 1
                if route is not last:
                    delivered.add(number)
                    last = route
                pos = end
                continue
            consumed, value = pika.frame.decode_frame(buf[pos:end])
            pos = end
            impl.bytes_received += consumed
            if value is not None:
                impl._process_frame(value)
    finally:
        impl.bytes_received += taken
        impl.frames_received += frames
        if pos < size:
            impl._frame_buffer = impl._frame_buffer + buf[pos:]
    for number in delivered:
        routes.blocking._request_channel_dispatch(-number)
