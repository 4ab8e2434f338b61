"""From flags to a plan, for the commands that publish: pure functions that refuse the
flag combinations ``amq send`` and ``amq rpc call`` do not take, and choose the body
source and how it splits into messages, so the command functions only do I/O
(``receive.plan_receive`` does the same for ``amq receive``). No broker, no stream:
``tests/unit/test_plans.py``.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from .. import errors
from .parsing import build_properties, parse_headers, parse_properties

if TYPE_CHECKING:
    from ..broker.model import Properties


class Framing(StrEnum):
    """How a body source splits into messages."""

    WHOLE = "whole"  # all of it one message
    LINES = "lines"  # --lines: one message per line
    NUL = "nul"  # --null: one per NUL-terminated record
    JSON = "json"  # --format json: one JSON object per line

    @property
    def separator(self) -> bytes | None:
        """What ends a record read from a stream; None: read it all as one."""
        return _SEPARATORS[self]


_SEPARATORS = {Framing.WHOLE: None, Framing.LINES: b"\n", Framing.NUL: b"\0",
               Framing.JSON: b"\n"}


class BodySource(NamedTuple):
    """Where the body comes from: BODY (``text``), ``--file`` (``path``), or stdin."""

    text: bytes | None  # BODY, the bytes the shell passed (argv is surrogateescape)
    path: str | None  # --file PATH
    framing: Framing = Framing.WHOLE

    @property
    def stdin(self) -> bool:
        return self.text is None and self.path is None


def body_source(body: str | None, file: str | None, stdin_isatty: bool,
                framing: Framing = Framing.WHOLE) -> BodySource:
    """BODY, or --file, or stdin when it is not a terminal; a usage error otherwise."""
    if body is not None and file is not None:
        raise errors.UsageError("give the body as BODY or --file, not both")
    if body is None and file is None and stdin_isatty:
        raise errors.UsageError("no body: give BODY, --file PATH, or pipe it on stdin")
    return BodySource(None if body is None else os.fsencode(body), file, framing)


def split_body(data: bytes, framing: Framing) -> list[bytes]:
    """A BODY argument as messages: --lines and --null drop the empty record after a final
    separator; JSON objects are one per line, whatever ends the line."""
    if framing is Framing.JSON:
        return data.splitlines()
    sep = framing.separator
    if sep is None:
        return [data]
    records = data.split(sep)
    return records[:-1] if records and records[-1] == b"" else records


def send_framing(lines: bool, null: bool, json_input: bool) -> Framing:
    """--lines, --null or --format json (at most one of them); WHOLE for none."""
    chosen = [f for f, on in ((Framing.LINES, lines), (Framing.NUL, null),
                              (Framing.JSON, json_input)) if on]
    if len(chosen) > 1:
        raise errors.UsageError("choose one of --lines, --null and --format json")
    return chosen[0] if chosen else Framing.WHOLE


class SendPlan(NamedTuple):
    """What ``amq send`` publishes, where, and how it reports."""

    exchange: str
    routing_key: str | None  # None: each JSON record names its own
    properties: Properties
    source: BodySource
    declare: bool  # declare default-exchange queues first
    confirm: bool
    mandatory: bool  # False with --allow-unroutable
    verbose: bool
    quiet: bool

    @property
    def bulk(self) -> bool:
        """Many messages from one source: progress, and a resume line on Ctrl+C."""
        return self.source.framing is not Framing.WHOLE

    @property
    def json_input(self) -> bool:
        return self.source.framing is Framing.JSON


def plan_send(routing_key: str | None = None, body: str | None = None, *, exchange: str = "",
              headers: list[str] | None = None, properties: list[str] | None = None,
              persistent: bool = False, file: str | None = None, lines: bool = False,
              null: bool = False, format: str = "raw", no_declare: bool = False,
              confirm: bool = False, allow_unroutable: bool = False, verbose: bool = False,
              quiet: bool = False, stdin_isatty: bool = False) -> SendPlan:
    """``amq send``'s flags as a plan, or the usage error the first bad flag gives."""
    if format not in ("raw", "json"):
        raise errors.UsageError(f"--format must be raw or json, not {format!r}")
    if routing_key is None and format != "json":
        raise errors.UsageError("missing ROUTING_KEY (the queue name, on the default exchange)")
    source = body_source(body, file, stdin_isatty, send_framing(lines, null, format == "json"))
    props = build_properties(parse_properties(properties), parse_headers(headers), persistent)
    return SendPlan(exchange, routing_key, props, source, not no_declare, confirm,
                    not allow_unroutable, verbose, quiet)
