"""tap's words to bindings (cli/tap.plan_taps), pure."""

import pytest

from amqcli import errors
from amqcli.cli.tap import TRACE_EXCHANGE, Tap, plan_taps


def test_keys_split_at_the_first_colon():
    assert plan_taps(["logs", "orders:eu.#", "x:a:b", "y:"], None, False) == [
        Tap("logs", None), Tap("orders", "eu.#"), Tap("x", "a:b"), Tap("y", "")]


def test_k_takes_the_names_whole_and_binds_each_key():
    assert plan_taps(["a:b"], ["k1", "k2"], False) == [Tap("a:b", "k1"), Tap("a:b", "k2")]


def test_firehose_adds_the_trace_exchange():
    assert plan_taps(None, None, True) == [Tap(TRACE_EXCHANGE, None)]


def test_nothing_to_tap_and_the_default_exchange_are_refused():
    with pytest.raises(errors.UsageError, match="EXCHANGE"):
        plan_taps([], None, False)
    with pytest.raises(errors.AccessRefused, match="default exchange") as caught:
        plan_taps([":key"], None, False)
    assert "--firehose" in (caught.value.hint or "")
