"""cli/top.py's pure parts: rates from two samples' counters (or the broker's own), the
order of the rows, the sparkline."""

from amqcli.amqp.model import Queue, QueueStats
from amqcli.cli.top import History, Row, SortKey, ordered, rows_between, sparkline


def test_rates_come_from_counters_or_from_the_broker():
    before = [QueueStats(Queue("a"), 100, 10)]
    after = [QueueStats(Queue("a", messages=190), 300, 20),
             QueueStats(Queue("new"), 50, 0),
             QueueStats(Queue("rabbit"), 7, 7, 2.5, 1.5)]
    rows = {r.name: r for r in rows_between(before, after, 2.0)}
    assert (rows["a"].publish_rate, rows["a"].deliver_rate) == (100.0, 5.0)
    assert rows["new"].publish_rate == 25.0  # new since the first sample: from 0
    assert (rows["rabbit"].publish_rate, rows["rabbit"].deliver_rate) == (2.5, 1.5)
    assert rows_between(None, after, 0)[0].publish_rate is None  # one sample: no rate yet


def test_sort_keys_and_sparkline():
    rows = [Row("b", 5, 0, 0, 1.0, 0.0, 0, 0), Row("a", 1, 9, 0, 0.0, 0.0, 0, 0),
            Row("c", 0, 0, 0, 9.0, 9.0, 0, 0)]
    assert [r.name for r in ordered(rows, SortKey.DEPTH)] == ["a", "b", "c"]
    assert [r.name for r in ordered(rows, SortKey.RATE)] == ["c", "b", "a"]
    assert [r.name for r in ordered(rows, SortKey.NAME)] == ["a", "b", "c"]
    assert sparkline([0, 4, 8]) == "▁▄█"
    assert sparkline([0] * 60, width=20) == "▁" * 20
    assert len(sparkline(list(range(60)), width=20)) == 20
    history = History(1.0)
    history.add(rows)
    history.add(rows[:1])
    assert history.line("b") == "██" and history.line("a") == ""
