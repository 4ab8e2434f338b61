"""The shims: every private part of typer/click that ``cli/typer_shim.py`` relies on is in
the installed typer (else a failure naming it), the shim hands them out working, and no
other module of amq reaches into typer's, click's or pika's private names.

pika's privates are checked in ``test_pika_shim.py``, beside the codec they serve.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "amqcli"
SHIMS = {"typer": PACKAGE / "cli" / "typer_shim.py", "pika": PACKAGE / "backends" / "pika_shim.py"}

# (module, attribute) that typer_shim uses, on typer with click vendored (0.25 on). The
# attributes are looked up on the module, or on a class of it ("Class.attribute").
TYPER_PRIVATES = [
    ("typer._click", "ClickException"),
    ("typer._click", "Command"),
    ("typer._click", "Context"),
    ("typer._click", "Parameter"),
    ("typer._click.shell_completion", "ShellComplete"),
    ("typer._click.shell_completion", "CompletionItem"),
    ("typer._click.shell_completion", "_resolve_context"),
    ("typer._click.shell_completion", "add_completion_class"),
    ("typer._completion_classes", "BashComplete"),
    ("typer._completion_classes", "ZshComplete"),
    ("typer._completion_classes", "FishComplete"),
    ("typer._completion_classes", "completion_init"),
]
# Private attribute names of a library's objects that only its shim may use.
PRIVATE_ATTRIBUTES = {
    "typer": {"_custom_shell_complete", "_resolve_context", "_click", "_completion_classes"},
    "pika": {"_impl", "_flush_output", "_closing_reason", "_output_marshaled_frames",
             "_body_max_length", "_on_data_available", "_process_frame", "_frame_buffer",
             "_request_channel_dispatch"},
}


def typer_version() -> str:
    return importlib.metadata.version("typer")


def missing(module_name: str, attribute: str) -> str | None:
    """Why ``module_name.attribute`` cannot be had from the installed typer (None: it can)."""
    if module_name.startswith("typer._click") and importlib.util.find_spec("typer._click") is None:
        module_name = module_name.replace("typer._click", "click", 1)  # typer before 0.25
    where = f"{module_name}.{attribute}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        return f"typer {typer_version()} has no module {module_name} ({err}), for {where}"
    if not hasattr(module, attribute):
        return f"typer {typer_version()} lacks {where}"
    return None


def test_the_typer_privates_the_shim_relies_on_are_in_the_installed_typer() -> None:
    """If this fails after an upgrade of typer, read typer_shim's docstring and follow the
    change there (and nowhere else)."""
    problems = [p for p in (missing(m, a) for m, a in TYPER_PRIVATES) if p]
    assert not problems, ("amqcli/cli/typer_shim.py relies on what this typer lacks:\n"
                          + "\n".join(problems))


def test_parameters_keep_their_completion_callback_where_the_shim_looks() -> None:
    """``Parameter._custom_shell_complete`` is set by click's ``__init__``: a real option
    of amq's tree has it, and the shim's setter is what click then calls."""
    import typer.main

    from amqcli.cli import load_commands, typer_shim
    tree = typer.main.get_command(load_commands("receive"))
    receive = tree.commands["receive"]  # type: ignore[attr-defined]
    param = next(p for p in receive.params if p.name == "queue")
    assert hasattr(param, "_custom_shell_complete"), (
        f"typer {typer_version()}: a click Parameter lacks _custom_shell_complete, which "
        "amqcli/cli/typer_shim.py reads and sets")

    def complete(_ctx, _param, incomplete):
        return [f"{incomplete}-done"]

    typer_shim.set_custom_shell_complete(param, complete)
    assert typer_shim.custom_shell_complete(param) is complete
    ctx = typer_shim.resolve_context(tree, ["receive"], "amq")
    assert ctx.command is receive
    assert [item.value for item in param.shell_complete(ctx, "q")] == ["q-done"]


def test_the_shims_hand_out_what_they_document() -> None:
    from amqcli.cli import typer_shim
    assert issubclass(typer_shim.BashComplete, typer_shim.ShellComplete)
    assert issubclass(typer_shim.ClickException, Exception)
    err = typer_shim.ClickException("bad flag")
    assert callable(err.show) and err.exit_code == 1


def private_uses(path: Path) -> set[str]:
    """The private names of typer, click or pika that a module of amq uses: attributes in
    ``PRIVATE_ATTRIBUTES``, and imports of ``typer._*``, ``click._*`` or ``pika._*``."""
    names = set().union(*PRIVATE_ATTRIBUTES.values())
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and node.value in names:
            found.add(node.value)  # getattr(obj, "_closing_reason")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            for module in modules:
                top, _, rest = module.partition(".")
                if top in ("typer", "click", "pika") and any(
                        part.startswith("_") for part in rest.split(".") if part):
                    found.add(module)
    return found


def test_only_the_shims_reach_into_private_names_of_typer_click_or_pika() -> None:
    shims = set(SHIMS.values())
    offenders = {str(path.relative_to(PACKAGE.parent)): sorted(uses)
                 for path in sorted(PACKAGE.rglob("*.py")) if path not in shims
                 for uses in [private_uses(path)] if uses}
    assert not offenders, f"private names outside the shims (move them into one): {offenders}"


@pytest.mark.parametrize("library", sorted(SHIMS))
def test_each_shim_uses_the_privates_it_is_checked_for(library: str) -> None:
    """The tables of these tests follow the shims: a private a shim uses is one they list."""
    used = {name.rpartition(".")[2] for name in private_uses(SHIMS[library])}
    assert used, f"{SHIMS[library].name} uses no private name: is the table stale?"
    listed = PRIVATE_ATTRIBUTES[library] | {a for _, a in TYPER_PRIVATES}
    unlisted = {u for u in used if u.startswith("_") and u not in listed}
    assert not unlisted, f"{SHIMS[library].name} uses {unlisted}, not checked by a test"
