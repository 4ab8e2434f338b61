"""Captures of traffic, for ``amq replay``: JSON lines as ``--format json`` writes them, or
a folder written by ``--save DIR``: per message, ``NNNNNN.body`` (the body, byte for byte)
and ``NNNNNN.json`` (the JSON object of ``--format json`` without the body, naming its
body file in ``body_file``), numbered in the order received, from one past the highest
number already there. What a capture holds comes back out as ``Record``s, in order.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from . import errors
from .amqp.model import Delivery
from .formats import delivery_to_json, from_rfc3339, read_records

_NUMBERED = re.compile(r"^(\d+)\.json$")
DIGITS = 6


class Record(NamedTuple):
    """One captured message: its JSON object, its body when the body was saved apart
    (None: in the object), where it came from (for messages), its time if known."""

    obj: dict[str, Any]
    body: bytes | None
    where: str  # "capture.jsonl line 3", "DIR/000003.json"
    received_at: float | None


def _numbers(folder: str) -> list[int]:
    return sorted(int(m.group(1)) for n in os.listdir(folder) if (m := _NUMBERED.match(n)))


class SaveWriter:
    """Writes deliveries into a folder (the ``DeliveryWriter`` of ``--save``): body first,
    then the metadata, so that a metadata file always has its body."""

    def __init__(self, folder: str) -> None:
        try:
            os.makedirs(folder, exist_ok=True)
            numbers = _numbers(folder)
        except OSError as err:
            raise errors.UsageError(f"cannot save into {folder}: {err.strerror}") from None
        self.folder = folder
        self.next = (numbers[-1] + 1) if numbers else 1

    def write(self, batch: list[Delivery]) -> int:
        for d in batch:
            stem = f"{self.next:0{DIGITS}d}"
            obj = delivery_to_json(d)
            del obj["body"], obj["body_encoding"]
            obj["body_file"] = f"{stem}.body"
            try:
                _write(os.path.join(self.folder, f"{stem}.body"), d.body)
                _write(os.path.join(self.folder, f"{stem}.json"),
                       json.dumps(obj, ensure_ascii=False).encode() + b"\n")
            except OSError as err:
                raise errors.AmqError(f"cannot save into {self.folder}: {err.strerror}") \
                    from None
            self.next += 1
        return len(batch)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def records(paths: list[str], stdin_fd: int) -> Iterator[Record]:
    """Every record of the captures named (files of JSON lines, --save folders; none:
    stdin), in order."""
    if not paths:
        yield from _lines(stdin_fd, "stdin")
        return
    for path in paths:
        if os.path.isdir(path):
            yield from _saved(path)
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise errors.UsageError(f"cannot read {path}: {err.strerror}") from None
        try:
            yield from _lines(fd, path)
        finally:
            os.close(fd)


def _lines(fd: int, name: str) -> Iterator[Record]:
    n = 0
    for batch in read_records(fd, b"\n"):
        for line in batch:
            n += 1
            if line.strip():
                where = f"{name} line {n}"
                yield _record(_parse(line, where), None, where)


def _saved(folder: str) -> Iterator[Record]:
    for number in _numbers(folder):
        where = os.path.join(folder, f"{number:0{DIGITS}d}.json")
        try:
            with open(where, "rb") as f:
                obj = _parse(f.read(), where)
            body_file = os.path.join(folder, str(obj.get("body_file") or
                                                 f"{number:0{DIGITS}d}.body"))
            with open(body_file, "rb") as f:
                body = f.read()
        except OSError as err:
            raise errors.UsageError(f"cannot read {err.filename}: {err.strerror}") from None
        yield _record(obj, body, where)


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError as err:
        raise errors.UsageError(f"{where}: not a JSON object: {err}") from None
    if not isinstance(obj, dict):
        raise errors.UsageError(f"{where}: not a JSON object")
    return obj


def _record(obj: dict[str, Any], body: bytes | None, where: str) -> Record:
    when = obj.get("received_at")
    try:
        at = from_rfc3339(when) if isinstance(when, str) else None
    except ValueError as err:
        raise errors.UsageError(f"{where}: bad received_at: {err}") from None
    return Record(obj, body, where, at)
