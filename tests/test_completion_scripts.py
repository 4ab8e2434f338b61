"""Shell completion: the committed scripts are current, ``amq completion`` prints and
installs them, and ``amq`` answers their ``_AMQ_COMPLETE`` requests with commands,
options, and the queue and exchange names of the broker in use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_management

from amqcli.cli.completion_scripts import FILE_NAMES, Shell, script

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"


@pytest.mark.parametrize("shell", list(Shell))
def test_committed_scripts_are_current(shell: Shell) -> None:
    committed = (COMPLETIONS / FILE_NAMES[shell]).read_text(encoding="utf-8")
    assert committed == script(shell), (
        f"completions/{FILE_NAMES[shell]} is stale: run "
        "`python -m amqcli.cli.completion_scripts completions`")


@pytest.mark.local_only
def test_completion_command_prints_the_script(amq: Any) -> None:
    for shell in Shell:
        assert amq("completion", shell.value).out == script(shell)
    refused = amq("completion", "tcsh", expect=2).stderr
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in refused


@pytest.mark.local_only
def test_install_writes_where_each_shell_looks(amq: Any, tmp_path: Any) -> None:
    env = amq.env(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
                  XDG_CONFIG_HOME=str(tmp_path / "config"))
    places = {Shell.BASH: tmp_path / "data" / "bash-completion" / "completions" / "amq",
              Shell.ZSH: tmp_path / ".zfunc" / "_amq",
              Shell.FISH: tmp_path / "config" / "fish" / "completions" / "amq.fish"}
    for shell, path in places.items():
        result = amq("completion", shell.value, "--install", env=env)
        assert str(path) in result.stderr
        assert path.read_text(encoding="utf-8") == script(shell)


def ask(amq: Any, words: str, **extra: str) -> list[str]:
    """What `amq` answers bash's completion request for the line ``words``."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    result = amq(env=amq.env(_AMQ_COMPLETE="complete_bash", COMP_WORDS=words,
                             COMP_CWORD=str(cword), **extra))
    return [line for line in result.lines if line]


@pytest.mark.local_only
def test_protocol_completes_commands_and_options(amq: Any) -> None:
    assert ask(amq, "amq rec") == ["receive"]
    assert ask(amq, "amq declare ") == ["queue", "exchange"]
    assert "--durable" in ask(amq, "amq declare queue --d")
    assert ask(amq, "amq list q") == ["queues"]
    assert "shell" in ask(amq, "amq sh")


def test_protocol_completes_names_from_the_broker(amq: Any, name: Any) -> None:
    needs_management(amq.broker)  # names come from the API on RabbitMQ
    q, x = name("cq"), name("cx")
    amq("declare", "queue", q)
    amq("declare", "exchange", x, "--type", "topic")
    assert ask(amq, f"amq receive {q[:-3]}") == [q]
    assert ask(amq, f"amq purge {q[:-3]}") == [q]
    assert ask(amq, f"amq bind {x[:-3]}") == [x]
    assert ask(amq, f"amq bind {x} {q[:-3]}") == [q]
    assert ask(amq, f"amq send -e {x[:-3]}") == [x]
    assert ask(amq, f"amq send -e {x} {q[:-3]}") == []  # a routing key, not a queue


def test_protocol_other_shells(amq: Any, name: Any) -> None:
    needs_management(amq.broker)  # names come from the API on RabbitMQ
    q = name("cq")
    amq("declare", "queue", q)
    zsh = amq(env=amq.env(_AMQ_COMPLETE="complete_zsh",
                          _TYPER_COMPLETE_ARGS=f"amq receive {q[:-3]}")).out
    assert zsh.startswith("_arguments") and f'"{q}"' in zsh
    fish = amq(env=amq.env(_AMQ_COMPLETE="complete_fish", _TYPER_COMPLETE_FISH_ACTION="get-args",
                           _TYPER_COMPLETE_ARGS=f"amq receive {q[:-3]}")).lines
    assert fish == [q]


@pytest.mark.local_only
def test_protocol_never_fails(amq: Any, tmp_path: Any) -> None:
    started = time.monotonic()
    assert ask(amq, "amq --url amqp://guest:guest@127.0.0.1:1/ receive ") == []
    assert ask(amq, "amq --url nosuch://x receive ") == []
    missing = tmp_path / "no-store-here.db"
    assert ask(amq, f"amq --url local:{missing} receive ") == []
    assert not missing.exists()  # completing never creates a store
    assert time.monotonic() - started < 20
