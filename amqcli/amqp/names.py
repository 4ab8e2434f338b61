"""Queue and exchange names as AMQP has them: the checks every broker applies to a name
given by a client, the names a server makes up, and how an error message names one."""

from __future__ import annotations

import os

from .. import errors
from .codec import shown

MAX_NAME_BYTES = 255  # a short string


def server_name(prefix: str) -> str:
    """``amq.gen-...``/``amq.ctag-...``: RabbitMQ's server-generated names."""
    import base64
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def check_name(kind: str, name: str) -> str:
    """Strip CR/LF as RabbitMQ does; refuse names over 255 bytes (AMQP short strings) and
    names that are not UTF-8 (bytes, or a str with the lone surrogates of undecodable argv)."""
    if not isinstance(name, str):
        try:
            name = bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            name = bytes(name).decode("utf-8", "surrogateescape")
    name = name.replace("\r", "").replace("\n", "")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise errors.UsageError(f"{kind} name '{shown(name)}' is not valid UTF-8") from None
    if size > MAX_NAME_BYTES:
        raise errors.UsageError(f"{kind} name is {size} bytes long; AMQP allows at most 255")
    return name


def where(kind: str, name: str) -> str:
    """A queue or exchange as RabbitMQ's error texts name it."""
    return f"{kind} '{name}' in vhost '/'"
