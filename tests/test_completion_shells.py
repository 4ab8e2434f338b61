"""The completion scripts in real shells (pexpect): installed with ``amq completion SHELL
--install`` into a scratch home, ``amq rec<Tab>`` completes to ``receive`` and
``amq receive <Tab><Tab>`` lists the queues of the local store.

bash is required (with the bash-completion package when present, which loads the
installed script on demand; else the script is sourced); zsh and fish run where they are
installed.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pexpect = pytest.importorskip("pexpect")

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
READY = "READY> "
LIST_TABS = {"bash": 2, "zsh": 1, "fish": 1}  # Tabs that list the ambiguous completions


def shell_env(tmp_path: Path, store: str) -> dict[str, str]:
    bin_dir = os.path.dirname(shutil.which("amq") or sys.executable)
    return dict(os.environ, AMQ_URL=store, HOME=str(tmp_path), TERM="xterm",
                XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"),
                PATH=bin_dir + os.pathsep + os.environ["PATH"])


def start(shell: str, env: dict[str, str]) -> Any:
    if shutil.which(shell) is None:
        if shell == "bash":
            pytest.fail("bash is needed for this test")
        pytest.skip(f"{shell} is not installed")
    script = Path(env["HOME"]) / "script"
    install = pexpect.run(f"amq completion {shell} --install", env=env, encoding="utf-8")
    assert "installed" in install, install
    args, setup = {
        "bash": (["--norc", "--noprofile"],
                 f"source {BASH_COMPLETION}" if os.path.exists(BASH_COMPLETION) else
                 f"source {env['XDG_DATA_HOME']}/bash-completion/completions/amq"),
        "zsh": (["-f"], "fpath+=~/.zfunc; autoload -Uz compinit; compinit -u"),
        "fish": ([], "true"),
    }[shell]
    prompt = f"function fish_prompt; echo -n '{READY}'; end" if shell == "fish" else \
        f"PS1='{READY}'"
    script.write_text(f"{prompt}; {setup}\n")
    child = pexpect.spawn(shell, args, env=env, encoding="utf-8", timeout=20,
                          dimensions=(30, 160))
    child.sendline(f"source {script}")
    child.expect(READY)
    return child


def press_tab(child: Any, typed: str, tabs: int = 1) -> None:
    child.send(typed)
    for _ in range(tabs):
        time.sleep(0.8)  # each Tab runs `amq` once
        child.send("\t")


def clear_line(child: Any) -> None:
    """Ctrl+U empties the line in all three (Ctrl+C would also flush typed-ahead keys)."""
    time.sleep(0.3)
    child.send("\x15")
    time.sleep(0.3)


@pytest.mark.local_only
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_in_a_real_shell(shell: str, amq: Any, tmp_path: Path) -> None:
    amq("declare", "queue", "jobs-alpha")
    amq("declare", "queue", "jobs-beta")
    child = start(shell, shell_env(tmp_path, amq.url))
    try:
        press_tab(child, "amq rec")
        child.expect("receive")
        clear_line(child)
        press_tab(child, "amq receive jo")
        child.expect("bs-")  # the common part of both names
        time.sleep(0.5)
        press_tab(child, "", tabs=LIST_TABS[shell])  # then the list of both
        child.expect("alpha")  # fish draws the common "jobs-" apart, in its own colour
        child.expect("beta")
        clear_line(child)
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
