"""The shell completion scripts for bash, zsh and fish, and where each is installed.

The scripts are typer's (click's ``_AMQ_COMPLETE`` protocol): each asks ``amq`` itself
for the completions of the words typed so far, so they never go stale as commands change;
``completions/`` in the repository holds copies. Regenerate them with::

    python -m amqcli.cli.completion_scripts [DIRECTORY]     # default: completions
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path

PROG_NAME = "amq"
COMPLETE_VAR = "_AMQ_COMPLETE"


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


FILE_NAMES: dict[Shell, str] = {Shell.BASH: "amq.bash", Shell.ZSH: "_amq", Shell.FISH: "amq.fish"}

# typer's zsh script registers itself with compdef: fine when sourced; but a file in
# $fpath is autoloaded as the completion function itself, which must also complete the
# first time (later Tabs go straight to the function registered).
_ZSH_REGISTER = "compdef _amq_completion amq"
_ZSH_EITHER_WAY = """\
compdef _amq_completion amq
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _amq_completion "$@"  # autoloaded from $fpath: complete this first time too
fi"""


def script(shell: Shell) -> str:
    """The completion script for ``shell``, ending with a newline."""
    from typer.completion import get_completion_script
    text = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR,
                                 shell=shell.value)
    if shell is Shell.ZSH:
        text = text.replace(_ZSH_REGISTER, _ZSH_EITHER_WAY)
    return text + "\n"


def _data_home() -> str:
    return os.environ.get("XDG_DATA_HOME", "").strip() or os.path.expanduser("~/.local/share")


def _config_home() -> str:
    return os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")


def install_path(shell: Shell) -> Path:
    """Where the shell finds a user's completion script without any start-up file edit
    (zsh needs ~/.zfunc in $fpath: see ``INSTALL_HINTS``)."""
    if shell is Shell.BASH:  # bash-completion's per-user directory, loaded on demand
        base = os.environ.get("BASH_COMPLETION_USER_DIR", "").strip() or \
            os.path.join(_data_home(), "bash-completion")
        return Path(base, "completions", PROG_NAME)
    if shell is Shell.ZSH:
        return Path(os.path.expanduser("~/.zfunc"), "_" + PROG_NAME)
    return Path(_config_home(), "fish", "completions", PROG_NAME + ".fish")


INSTALL_HINTS: dict[Shell, str] = {
    Shell.BASH: "loaded by the bash-completion package in new shells (without it, add "
                "`source {path}` to ~/.bashrc)",
    Shell.ZSH: "add `fpath+=~/.zfunc; autoload -Uz compinit; compinit` to ~/.zshrc if it "
               "is not there, then start a new shell",
    Shell.FISH: "used by new fish sessions",
}


def install(shell: Shell) -> Path:
    """Write the script where ``shell`` looks for it; the path."""
    path = install_path(shell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script(shell), encoding="utf-8")
    return path


def write_all(directory: Path) -> list[Path]:
    """Write every shell's script into ``directory``; the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, file_name in FILE_NAMES.items():
        path = directory / file_name
        path.write_text(script(shell), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for path in write_all(Path(args[0] if args else "completions")):
        print(path)


if __name__ == "__main__":
    main()
