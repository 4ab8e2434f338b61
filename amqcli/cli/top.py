"""``amq top``: the queues live (rich ``Live``): ready, unacknowledged, consumers, messages
in and out per second, and a sparkline of each queue's depth over the last minute.

It only reads what the broker reports (``Backend.queue_stats``): no declare, no consumer,
so it changes nothing it watches (no ``x-expires`` lease is renewed). Locally the rates
are the store's counters between two samples; RabbitMQ's are the management API's own,
which lag by seconds. ``--once`` prints one snapshot of two samples one ``--interval``
apart, for scripts.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import select
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from .. import errors
from .app import app, env_of

if TYPE_CHECKING:
    from ..amqp.model import QueueStats
    from .env import Environment

HISTORY_SECONDS = 60.0  # what the sparkline covers
SPARK_WIDTH = 20
SPARKS = "▁▂▃▄▅▆▇█"


class TopFormat(StrEnum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"


class SortKey(StrEnum):
    DEPTH = "depth"
    RATE = "rate"
    NAME = "name"


KEYS = {"d": SortKey.DEPTH, "r": SortKey.RATE, "n": SortKey.NAME}  # the keys that sort


class Row(NamedTuple):
    """One queue of the view."""

    name: str
    messages: int  # ready
    unacked: int
    consumers: int
    publish_rate: float | None  # per second (None until there are two samples)
    deliver_rate: float | None
    published: int | None  # in all
    delivered: int | None

    def as_json(self) -> dict[str, Any]:
        return self._asdict()


def _rate(now: int | None, then: int | None, seconds: float) -> float | None:
    if now is None or then is None or seconds <= 0:
        return None
    return round(max(0, now - then) / seconds, 1)


def rows_between(before: Sequence[QueueStats] | None, after: Sequence[QueueStats],
                 seconds: float) -> list[Row]:
    """The view of the latest sample: rates from the broker where it gives them, else from
    the counters of the sample ``seconds`` before (a queue new since then: from 0)."""
    earlier = {s.queue.name: s for s in before or ()}
    rows = []
    for s in after:
        q, prev = s.queue, earlier.get(s.queue.name)
        rates: tuple[float | None, float | None]
        if s.publish_rate is not None:
            rates = (s.publish_rate, s.deliver_rate)
        elif before is None:
            rates = (None, None)
        else:
            rates = (_rate(s.published, prev.published if prev else 0, seconds),
                     _rate(s.delivered, prev.delivered if prev else 0, seconds))
        rows.append(Row(q.name, q.messages, q.unacked, q.consumers, *rates, s.published,
                        s.delivered))
    return rows


def ordered(rows: list[Row], key: SortKey) -> list[Row]:
    if key is SortKey.NAME:
        return sorted(rows, key=lambda r: r.name)
    if key is SortKey.RATE:
        return sorted(rows, key=lambda r: (-((r.publish_rate or 0) + (r.deliver_rate or 0)),
                                           r.name))
    return sorted(rows, key=lambda r: (-(r.messages + r.unacked), r.name))


def sparkline(depths: Sequence[int], width: int = SPARK_WIDTH) -> str:
    """Depths as block characters, at most ``width`` (the highest of each stretch), scaled
    to the highest depth shown."""
    if not depths:
        return ""
    step = max(1, -(-len(depths) // width))
    points = [max(depths[i:i + step]) for i in range(0, len(depths), step)]
    top = max(points)
    if top == 0:
        return SPARKS[0] * len(points)
    return "".join(SPARKS[min(len(SPARKS) - 1, p * (len(SPARKS) - 1) // top)] for p in points)


class History:
    """Each queue's depth (ready + unacked) at each sample of the last minute."""

    def __init__(self, interval: float) -> None:
        self.size = max(2, int(HISTORY_SECONDS / interval))
        self.depths: dict[str, deque[int]] = {}

    def add(self, rows: Sequence[Row]) -> None:
        names = {r.name for r in rows}
        for gone in set(self.depths) - names:
            del self.depths[gone]
        for r in rows:
            self.depths.setdefault(r.name, deque(maxlen=self.size)).append(
                r.messages + r.unacked)

    def line(self, name: str) -> str:
        return sparkline(list(self.depths.get(name, ())))


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def header(url: str, rows: Sequence[Row], key: SortKey | None, lagging: bool) -> str:
    """The totals line above the table."""
    rate_in = sum(r.publish_rate or 0 for r in rows)
    rate_out = sum(r.deliver_rate or 0 for r in rows)
    text = (f"amq top  {url}\n{len(rows)} queues  {sum(r.messages for r in rows):,} ready  "
            f"{sum(r.unacked for r in rows):,} unacked  "
            f"{sum(r.consumers for r in rows):,} consumers  in {_number(rate_in)}/s  "
            f"out {_number(rate_out)}/s")
    if lagging:
        text += "\nrates and counts from RabbitMQ's management API: seconds behind"
    if key is None:  # a snapshot: no keys
        return text
    return text + f"\nsorted by {key.value}: keys d(epth) r(ate) n(ame), q quits"


COLUMNS = ["queue", "ready", "unacked", "consumers", "in/s", "out/s", "depth, last minute"]


def cells(r: Row, history: History | None) -> list[str]:
    return [r.name, f"{r.messages:,}", f"{r.unacked:,}", str(r.consumers),
            _number(r.publish_rate), _number(r.deliver_rate),
            history.line(r.name) if history else ""]


@contextlib.contextmanager
def keys_from(fd: int, enabled: bool) -> Iterator[bool]:
    """The terminal on ``fd`` in cbreak mode (keys one at a time, no echo), restored at the
    end; yields whether keys can be read at all."""
    if not enabled:
        yield False
        return
    import termios
    import tty
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def next_key(fd: int, timeout: float) -> str | None:
    """A key pressed within ``timeout`` seconds, else None."""
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not ready:
        return None
    data = os.read(fd, 32)
    return data.decode("utf-8", "replace")[-1:] if data else "q"


class Sampler:
    """Samples of the broker's queues (those matching a pattern), and the seconds between
    the last two."""

    def __init__(self, sample: Callable[[], list[QueueStats]], pattern: str | None) -> None:
        self.sample = sample
        self.pattern = pattern
        self.last: list[QueueStats] | None = None
        self.at = 0.0

    def next(self) -> list[Row]:
        stats = [s for s in self.sample() if self.pattern is None
                 or fnmatch.fnmatchcase(s.queue.name, self.pattern)]
        now = time.monotonic()
        rows = rows_between(self.last, stats, now - self.at)
        self.last, self.at = stats, now
        return rows


@app.command("top", help="The queues live: ready, unacked, consumers, messages in and out "
                         "per second, depth over the last minute. Keys: d, r, n sort (depth, "
                         "rate, name); q or Ctrl+C leaves.")
def top(
    ctx: typer.Context,
    pattern: Annotated[str | None, typer.Argument(
        metavar="[PATTERN]", help="Only queues whose name matches this glob ('orders.*').")
    ] = None,
    interval: Annotated[float, typer.Option(
        "--interval", "-i", metavar="SECONDS", min=0.1,
        help="Seconds between samples.")] = 1.0,
    once: Annotated[bool, typer.Option(
        "--once", help="Print one snapshot (two samples one --interval apart) and exit.")
    ] = False,
    format: Annotated[TopFormat | None, typer.Option(
        "--format", "-F", case_sensitive=False,
        help="With --once: table (terminal default), tsv (pipe default) or json.")] = None,
    sort: Annotated[SortKey, typer.Option(
        "--sort", "-s", case_sensitive=False, help="depth, rate or name.")] = SortKey.DEPTH,
) -> None:
    env = env_of(ctx)
    if not once and not env.stdout_isatty:
        raise errors.UsageError("amq top draws on a terminal: use --once for one snapshot "
                                "(--format json for scripts)")
    backend = env.backend()
    sampler = Sampler(backend.queue_stats, pattern)
    lagging = env.broker_url().scheme != "local"
    if once:
        sampler.next()
        time.sleep(interval)
        rows = ordered(sampler.next(), sort)
        fmt = format or (TopFormat.TABLE if env.stdout_isatty else TopFormat.TSV)
        if fmt is TopFormat.JSON:
            print(json.dumps([r.as_json() for r in rows],
                             indent=2 if env.stdout_isatty else None), flush=True)
        elif fmt is TopFormat.TSV:
            for r in rows:
                print("\t".join("" if v is None else str(v) for v in r[:6]), flush=False)
        else:
            from ..render import dashboard
            env.console().print(dashboard(header(backend.display_url, rows, None, lagging),
                                          COLUMNS[:-1], [cells(r, None)[:-1] for r in rows]))
        return
    live(env, backend.display_url, sampler, interval, sort, lagging)


def live(env: Environment, url: str, sampler: Sampler, interval: float, key: SortKey,
         lagging: bool) -> None:
    """Redraw every ``interval`` until q or Ctrl+C; the terminal as it was afterwards."""
    from rich.live import Live

    from ..render import dashboard
    history = History(interval)
    console = env.console()
    rows = sampler.next()
    history.add(rows)
    with keys_from(env.stdin_fd, env.stdin_isatty) as keyed, \
            Live(console=console, screen=True, auto_refresh=False) as view:
        due = time.monotonic() + interval
        try:
            while True:
                shown = ordered(rows, key)
                view.update(dashboard(header(url, shown, key, lagging), COLUMNS,
                                      [cells(r, history) for r in shown]), refresh=True)
                left = due - time.monotonic()
                if left <= 0:
                    rows = sampler.next()
                    history.add(rows)
                    due = max(due + interval, time.monotonic())
                    continue
                pressed = next_key(env.stdin_fd, left) if keyed else None
                if not keyed:
                    time.sleep(left)
                if pressed == "q":
                    return
                key = KEYS.get(pressed or "", key)
        except KeyboardInterrupt:
            return
