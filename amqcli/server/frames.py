"""AMQP 0-9-1 frames on the wire, read and written with pamqp's definitions.

``read_frames`` cuts a byte stream into frames and checks what pamqp leaves to its caller
(the size limit, the frame-end octet, the frame type), raising the connection errors
RabbitMQ sends, with its texts (501 FRAME_ERROR ``type 9, all octets = <<>>:
unknown_frame``). Method payloads are decoded by pamqp; the two that every message
repeats (``basic.publish`` and the content header's properties) are memoized by their
bytes (``functools.lru_cache``), since a publisher sends the same ones over and over.

Outgoing methods are encoded from pamqp's field definitions without pamqp's validators:
RabbitMQ accepts any UTF-8 in queue and exchange names, which pamqp's regular
expressions refuse. Field tables keep their key order and write floats as doubles and
``bytes`` as byte arrays (pamqp sorts keys, writes 32-bit floats and refuses ``bytes``).
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
from typing import Any, NamedTuple, TypeVar

from pamqp import base, commands, encode, header

from .. import errors
from ..amqp.model import Properties
from ..amqp.streams import OFFSET_HEADER

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"
FRAME_MIN_SIZE = 4096
FRAME_MAX = 131072
HEARTBEAT_FRAME = struct.pack(">BHI", FRAME_HEARTBEAT, 0, 0) + FRAME_END

_FRAME_HEAD = struct.Struct(">BHI")
_INDEX = struct.Struct(">I")
_CONTENT_HEAD = struct.Struct(">HHQ")
_LONG = struct.Struct(">I")
_LONGLONG = struct.Struct(">Q")
_LONGLONG_SIGNED = struct.Struct(">q")  # a stream's x-stream-offset header: a long, as RabbitMQ
_FLAGS = struct.Struct(">H")
_KNOWN_TYPES = frozenset((FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT))
_PUBLISH_BYTES = _INDEX.pack(commands.Basic.Publish.index)
_ACK_BYTES = _INDEX.pack(commands.Basic.Ack.index)
_ACK = struct.Struct(">QB")  # basic.ack: delivery-tag, then the multiple bit
_CACHE_SIZE = 4096


class Frame(NamedTuple):
    type: int
    channel: int
    payload: bytes


def octets(data: bytes, most: int = 48) -> str:
    """Bytes the way RabbitMQ's error texts show them (Erlang: ``<<"ab">>``, ``<<0,20>>``)."""
    shown = data[:most]
    if shown and all(32 <= b < 127 and b not in b'"\\' for b in shown):
        text = '"' + shown.decode("ascii") + '"'
    else:
        text = ",".join(str(b) for b in shown)
    return f"<<{text}{',...' if len(data) > most else ''}>>"


def read_frames(buffer: bytearray,
                frame_max: int) -> tuple[list[Frame], int, errors.BrokerError | None]:
    """The complete frames at the start of ``buffer``, how many bytes they took, and the
    error that stopped the reading, if any: ``errors.FrameError`` (501) for a frame over
    ``frame_max``, a missing frame-end octet or an unknown frame type, as RabbitMQ says."""
    frames: list[Frame] = []
    pos, end = 0, len(buffer)
    limit = frame_max - 8
    while end - pos >= 7:
        kind, channel, size = _FRAME_HEAD.unpack_from(buffer, pos)
        if size > limit:
            return frames, pos, errors.FrameError(
                f"type {kind}, all octets = <<>>: {{frame_too_large,{size},{limit}}}")
        stop = pos + 7 + size
        if stop >= end:
            break
        payload = bytes(buffer[pos + 7:stop])
        if buffer[stop] != 0xCE:
            return frames, pos, errors.FrameError(
                f"type {kind}, all octets = {octets(payload)}: "
                f"{{invalid_frame_end_marker,{buffer[stop]}}}")
        if kind not in _KNOWN_TYPES or (kind == FRAME_METHOD and size < 4):
            return frames, pos, errors.FrameError(
                f"type {kind}, all octets = {octets(payload)}: unknown_frame")
        frames.append(Frame(kind, channel, payload))
        pos = stop + 1
    return frames, pos, None


def only_acks(found: list[Frame]) -> bool:
    """Whether these frames are all ``basic.ack`` methods (or heartbeats): nothing that
    needs the store before the acks are written (``turn.Turn.defer_acks``)."""
    for frame in found:
        if frame.type == FRAME_METHOD:
            if frame.payload[:4] != _ACK_BYTES:
                return False
        elif frame.type != FRAME_HEARTBEAT:
            return False
    return True


# --- decoding -------------------------------------------------------------------------

M = TypeVar("M", bound=base.Frame)


class MethodFrameError(errors.FrameError):
    """A method frame that does not decode: ``method`` (its class, undecoded) gives the
    class and method ids of the reply."""

    def __init__(self, text: str, method: base.Frame) -> None:
        super().__init__(text)
        self.method = method


class UnknownMethod(Exception):
    """A method frame naming a (class, method) that AMQP 0-9-1 does not define."""

    def __init__(self, class_id: int, method_id: int) -> None:
        super().__init__(class_id, method_id)
        self.class_id, self.method_id = class_id, method_id


def method_ids(payload: bytes) -> tuple[int, int]:
    index = _INDEX.unpack_from(payload)[0]
    return index >> 16, index & 0xFFFF


def decode_method(payload: bytes) -> base.Frame:
    """The pamqp method of a method frame's payload (shared: never mutate it)."""
    if len(payload) == 13 and payload[:4] == _ACK_BYTES:  # a consumer's every message
        tag, bits = _ACK.unpack_from(payload, 4)
        return build(commands.Basic.Ack, tag, bool(bits & 1))
    if payload[:4] == _PUBLISH_BYTES:  # a publisher's every message, mostly the same
        return _decode_publish(payload)
    return _decode_method(payload)


def _decode_method(payload: bytes) -> base.Frame:
    cls = commands.INDEX_MAPPING.get(_INDEX.unpack_from(payload)[0])
    if cls is None:
        raise UnknownMethod(*method_ids(payload))
    method = cls()
    try:
        method.unmarshal(payload[4:])
    except (struct.error, ValueError, TypeError, KeyError, IndexError) as err:
        raise MethodFrameError(f"cannot decode {octets(payload[4:])}", method) from err
    return method


_decode_publish = functools.lru_cache(maxsize=_CACHE_SIZE)(_decode_method)


def decode_header(payload: bytes) -> tuple[int, int, Properties]:
    """A content header frame's (class id, body size, properties)."""
    if len(payload) < 14:
        raise errors.FrameError(f"cannot decode {octets(payload)}")
    class_id, _weight, size = _CONTENT_HEAD.unpack_from(payload)
    try:
        return class_id, size, _properties(payload[12:])
    except (struct.error, ValueError, TypeError, KeyError, IndexError) as err:
        raise errors.FrameError(f"cannot decode {octets(payload)}") from err


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _properties(flags_and_values: bytes) -> Properties:
    """Properties by their bytes: a publisher sends the same ones message after message."""
    content = header.ContentHeader()
    content.unmarshal(bytes(12) + flags_and_values)  # the size was read by the caller
    return properties_from_wire(content.properties)


def properties_from_wire(p: commands.Basic.Properties) -> Properties:
    stamp: Any = p.timestamp
    if isinstance(stamp, dt.datetime):
        stamp = int(stamp.timestamp())
    return Properties(p.content_type, p.content_encoding, p.headers, p.delivery_mode,
                      p.priority, p.correlation_id, p.reply_to, p.expiration, p.message_id,
                      stamp, p.message_type, p.user_id, p.app_id,
                      p.cluster_id or None)  # pamqp's default is "" where unset


# --- encoding -------------------------------------------------------------------------

def encode_value(value: Any) -> bytes:
    """One field-table value with its type octet."""
    if isinstance(value, float):
        return b"d" + encode.double(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"x" + encode.byte_array(bytearray(value))
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, (list, tuple)):
        data = b"".join(encode_value(v) for v in value)
        return b"A" + _LONG.pack(len(data)) + data
    return encode.encode_table_value(value)


def encode_table(table: dict[str, Any] | None) -> bytes:
    if not table:
        return b"\0\0\0\0"
    data = b"".join(encode.short_string(str(k)) + (
        b"l" + _LONGLONG_SIGNED.pack(v) if k == OFFSET_HEADER and type(v) is int
        else encode_value(v)) for k, v in table.items())
    return _LONG.pack(len(data)) + data


def _property_fields() -> list[tuple[int, str]]:
    cls = commands.Basic.Properties
    return [(cls.flags[name], cls.amqp_type(name)) for name in cls.__slots__]


_PROPERTY_FIELDS = _property_fields()  # in the order of model.PROPERTY_NAMES


def encode_properties(props: Properties) -> bytes:
    """The property flags and values of a content header."""
    flags, parts = 0, []
    values: tuple[Any, ...] = tuple(props)
    for value, (flag, kind) in zip(values, _PROPERTY_FIELDS, strict=True):
        if value is None:
            continue
        flags |= flag
        if kind == "table":
            parts.append(encode_table(value))
        elif kind == "timestamp":
            parts.append(_LONGLONG.pack(int(value)))
        else:
            parts.append(encode.by_type(value, kind))
    return _FLAGS.pack(flags) + b"".join(parts)


def method_payload(method: base.Frame) -> bytes:
    """A method's frame payload: its index, then its fields as pamqp defines them."""
    out = [_INDEX.pack(method.index)]
    bits, offset = -1, 0
    for name in method.__slots__:
        kind = method.amqp_type(name)
        value = getattr(method, name)
        if kind == "bit":
            if bits < 0 or offset == 8:
                if bits >= 0:
                    out.append(bytes((bits,)))
                bits, offset = 0, 0
            bits |= bool(value) << offset
            offset += 1
            continue
        if bits >= 0:
            out.append(bytes((bits,)))
            bits = -1
        out.append(encode_table(value) if kind == "table" else encode.by_type(value, kind))
    if bits >= 0:
        out.append(bytes((bits,)))
    return b"".join(out)


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEAD.pack(kind, channel, len(payload)) + payload + FRAME_END


def method_frame(method: base.Frame, channel: int) -> bytes:
    return frame(FRAME_METHOD, channel, method_payload(method))


def content_frames(channel: int, props: bytes, body: bytes, frame_max: int) -> bytes:
    """The header frame and body frames of a message (``props`` from encode_properties)."""
    return b"".join(content_parts(channel, props, body, frame_max))


Part = bytes | memoryview
LARGE_PART = 64 * 1024  # output pieces sent as they are rather than joined (body chunks)


def content_parts(channel: int, props: bytes, body: bytes, frame_max: int) -> list[Part]:
    """``content_frames`` in pieces, a large body's chunks as views of it, not copies."""
    head = _CONTENT_HEAD.pack(60, 0, len(body)) + props
    out: list[Part] = [_FRAME_HEAD.pack(FRAME_HEADER, channel, len(head)), head, FRAME_END]
    step = frame_max - 8
    if len(body) <= step:
        if body:
            out += (_FRAME_HEAD.pack(FRAME_BODY, channel, len(body)), body, FRAME_END)
        return out
    view = memoryview(body)
    for i in range(0, len(body), step):
        chunk = view[i:i + step]
        out += (_FRAME_HEAD.pack(FRAME_BODY, channel, len(chunk)), chunk, FRAME_END)
    return out


class DeliverEncoder:
    """``basic.deliver`` frames from templates: one pamqp encoding per (consumer,
    exchange, routing key, redelivered), then only the delivery tag changes."""

    def __init__(self, channel: int) -> None:
        self.channel = channel
        self._templates: dict[tuple[str, str, str, bool], tuple[bytes, bytes]] = {}

    def frame(self, consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str,
              routing_key: str) -> bytes:
        key = (consumer_tag, exchange, routing_key, redelivered)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= _CACHE_SIZE:
                self._templates.clear()
            payload = method_payload(build(commands.Basic.Deliver, consumer_tag, 0, redelivered,
                                           exchange, routing_key))
            at = 5 + len(consumer_tag.encode("utf-8"))
            head = _FRAME_HEAD.pack(FRAME_METHOD, self.channel, len(payload))
            template = self._templates[key] = (head + payload[:at], payload[at + 8:] + FRAME_END)
        return template[0] + _LONGLONG.pack(delivery_tag) + template[1]


def build(cls: type[M], *values: Any) -> M:
    """A pamqp method with these field values (in its field order), without running its
    validators, which refuse names RabbitMQ accepts (``queue.declare-ok`` of "my queue")."""
    method = cls.__new__(cls)
    for name, value in zip(cls.__slots__, values, strict=True):
        setattr(method, name, value)
    return method
