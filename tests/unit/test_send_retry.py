"""Unit tests for send's Retry: the reconnect loop's backoff from 0.1 s, within a limit."""

from __future__ import annotations

import time

from amqcli.cli.send import Retry


def test_waits_start_short_and_double() -> None:
    retry = Retry(60)
    waits = [retry.next() for _ in range(4)]
    assert all(w is not None for w in waits)
    assert 0.05 <= waits[0] <= 0.1  # type: ignore[operator]
    assert 0.4 <= waits[3] <= 0.8  # type: ignore[operator]


def test_nothing_once_the_limit_has_passed() -> None:
    assert Retry(0).next() is None
    retry = Retry(0.05)
    first = retry.next()
    assert first is not None and first <= 0.05
    time.sleep(0.06)
    assert retry.next() is None
