"""The shell's completion as a pure step: text before the cursor in, suggestions out.

No terminal and no broker: the names come from a fixed ``NameSource``; the command tree
is the real one (the command line's plus the shell's commands).
"""

from __future__ import annotations

from typing import Any

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from amqcli.cli import load_commands
from amqcli.cli.names import Kind, NameSource
from amqcli.repl.catalog import Catalog
from amqcli.repl.commands import shell_group
from amqcli.repl.completer import CommandCompleter, command_tree, names_in, split_line


class FixedNames(NameSource):
    def __init__(self, **names: list[str]) -> None:
        self.by_kind = {Kind(k): v for k, v in names.items()}

    def names(self, kind: Kind) -> list[str]:
        return self.by_kind.get(kind, [])


NAMES = FixedNames(queue=["jobs", "jobs.dead", "my queue", "orders"],
                   exchange=["logs", "amq.topic"], broker=["prod", "staging"])


@pytest.fixture(scope="module")
def tree() -> Any:
    return command_tree(load_commands(), shell_group())


def complete(tree: Any, text: str, names: NameSource = NAMES) -> list[str]:
    """The texts the completer would insert, for ``text`` typed at the prompt."""
    completer = CommandCompleter(tree, names)
    document = Document(text, len(text))
    return [c.text for c in completer.get_completions(document, CompleteEvent())]


def replaced(tree: Any, text: str) -> list[int]:
    completer = CommandCompleter(tree, NAMES)
    return [c.start_position
            for c in completer.get_completions(Document(text, len(text)), CompleteEvent())]


def test_command_names(tree: Any) -> None:
    assert complete(tree, "dec") == ["declare"]
    assert complete(tree, "rec") == ["receive"]
    assert set(complete(tree, "")) >= {"send", "receive", "declare", "bind", "list",
                                       "subscribe", "connect", "help", "exit"}


def test_shell_commands_are_completed_but_not_the_shell_itself(tree: Any) -> None:
    assert complete(tree, "sub") == ["subscribe", "subscriptions"]
    assert complete(tree, "uns") == ["unsubscribe"]
    assert complete(tree, "sh") == []
    assert complete(tree, "rep") == ["replay"]  # not repl


def test_subcommands(tree: Any) -> None:
    assert complete(tree, "declare ") == ["queue", "exchange"]
    assert complete(tree, "list q") == ["queues"]
    assert complete(tree, "delete e") == ["exchange"]


def test_options(tree: Any) -> None:
    assert complete(tree, "declare queue --du") == ["--durable"]
    assert "--count" in complete(tree, "receive jobs --")
    assert complete(tree, "receive jobs --cou") == ["--count"]
    assert complete(tree, "--ur") == ["--url"]
    assert complete(tree, "subscribe --no") == ["--no-declare", "--no-reconnect"]


def test_queue_names_where_a_queue_goes(tree: Any) -> None:
    assert complete(tree, "receive jo") == ["jobs", "jobs.dead"]
    assert complete(tree, "purge o") == ["orders"]
    assert complete(tree, "subscribe o") == ["orders"]
    assert complete(tree, "declare queue jobs.") == ["jobs.dead"]
    assert complete(tree, "delete queue ord") == ["orders"]
    assert complete(tree, "send ord") == ["orders"]
    assert complete(tree, "move jobs.") == ["jobs.dead"]
    assert complete(tree, "move jobs.dead jo") == ["jobs", "jobs.dead"]


def test_exchange_names_where_an_exchange_goes(tree: Any) -> None:
    assert complete(tree, "bind ") == ["logs", "amq.topic"]
    assert complete(tree, "bind logs o") == ["orders"]
    assert complete(tree, "receive -e l") == ["logs"]
    assert complete(tree, "send -e amq.") == ["amq.topic"]
    assert complete(tree, "declare queue q --dead-letter-exchange l") == ["logs"]
    assert complete(tree, "delete exchange l") == ["logs"]
    assert complete(tree, "move jobs --to-exchange l") == ["logs"]


def test_no_queue_names_for_a_routing_key_on_an_exchange(tree: Any) -> None:
    assert complete(tree, "send -e logs o") == []


def test_profile_names_for_broker(tree: Any) -> None:
    assert complete(tree, "--broker p") == ["prod"]
    assert complete(tree, "connect --broker s") == ["staging"]


def test_help_completes_commands(tree: Any) -> None:
    assert complete(tree, "help dec") == ["declare"]
    assert complete(tree, "help declare q") == ["queue"]
    assert complete(tree, "help sub") == ["subscribe", "subscriptions"]


def test_names_needing_quotes_are_quoted(tree: Any) -> None:
    assert complete(tree, "purge my") == ["'my queue'"]
    assert complete(tree, "purge 'my q") == ["'my queue'"]
    # the replacement covers the word as typed, quote included
    assert replaced(tree, "purge 'my q") == [-len("'my q")]


def test_odd_input_never_raises(tree: Any) -> None:
    for text in ["'", '"unclosed', "receive --count", "receive --count x ", "\\",
                 "declare queue jobs --arg", "-- --", "nosuch command ", "list queues extra "]:
        complete(tree, text)  # no exception


def test_failing_name_source_gives_nothing(tree: Any) -> None:
    class Broken(NameSource):
        def names(self, kind: Kind) -> list[str]:
            raise RuntimeError("broker gone")
    assert complete(tree, "receive ", Broken()) == []
    assert complete(tree, "rec", Broken()) == ["receive"]


@pytest.mark.parametrize(("text", "words", "incomplete", "start"), [
    ("", [], "", 0),
    ("send", [], "send", 0),
    ("send ", ["send"], "", 5),
    ("send jobs  h", ["send", "jobs"], "h", 11),
    ("send 'my q", ["send"], "my q", 5),
    ('send "a \\" b" c', ["send", 'a " b'], "c", 14),
    ("send a\\ b", ["send"], "a b", 5),
])
def test_split_line(text: str, words: list[str], incomplete: str, start: int) -> None:
    line = split_line(text)
    assert (line.words, line.incomplete, line.start) == (words, incomplete, start)


def test_names_in_a_command_line(tree: Any) -> None:
    assert names_in(tree, ["declare", "queue", "jobs"]) == [(Kind.QUEUE, "jobs")]
    assert set(names_in(tree, ["bind", "logs", "jobs", "-k", "x"])) == \
        {(Kind.QUEUE, "jobs"), (Kind.EXCHANGE, "logs")}
    assert names_in(tree, ["send", "jobs", "hi"]) == [(Kind.QUEUE, "jobs")]
    assert names_in(tree, ["send", "-e", "logs", "key", "hi"]) == [(Kind.EXCHANGE, "logs")]
    assert names_in(tree, ["nosuch", "x"]) == []


def test_catalog_offers_the_listing_else_the_names_seen() -> None:
    catalog = Catalog()
    catalog.saw(Kind.QUEUE, "typed")
    assert catalog.names(Kind.QUEUE) == ["typed"]  # nothing listed yet
    catalog.listed({Kind.QUEUE: ["b", "a"], Kind.EXCHANGE: ["x"]})
    assert catalog.names(Kind.QUEUE) == ["a", "b"]
    assert catalog.names(Kind.EXCHANGE) == ["x"]
    catalog.listing_failed()
    assert catalog.names(Kind.QUEUE) == ["a", "b", "typed"]


def test_operations_complete_queue_and_exchange_names(tree: Any) -> None:
    assert complete(tree, "peek jo") == ["jobs", "jobs.dead"]
    assert complete(tree, "tap l") == ["logs"]
    assert complete(tree, "tap logs amq.t") == ["amq.topic"]
    assert "--where" in complete(tree, "peek jobs --wh")
    assert "--speed" in complete(tree, "replay --sp")
