"""The layers of DESIGN.md, checked on the source: every module of ``amqcli`` parsed with
``ast``, its imports gathered at any depth (inside functions too; ``if TYPE_CHECKING:``
blocks aside), relative imports resolved, and the resulting graph held to the rules.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "amqcli"

# Engine modules may be imported only from these (and from inside the engine).
ENGINE_IMPORTERS = ("amqcli.backends.local", "amqcli.server", "amqcli.cli.broker_cmd")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """Every node of the tree but those under an ``if TYPE_CHECKING:`` body."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _command_modules(tree: ast.Module) -> list[str]:
    """The values of the module-level ``COMMAND_MODULES = {...}`` of ``cli/__init__.py``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "COMMAND_MODULES" for t in node.targets):
            return sorted({v.value for v in node.value.values})  # type: ignore[attr-defined]
    raise AssertionError("cli/__init__.py: no COMMAND_MODULES mapping to read")


class Module:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = module_name(path)
        self.package = self.name if is_package(path) else self.name.rpartition(".")[0]
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def _absolute(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        base = self.package.split(".")
        if level > 1:
            base = base[: -(level - 1)]
        return ".".join([*base, module] if module else base)

    def imports(self, known: set[str]) -> dict[str, int]:
        """The modules this one imports (any name, amqcli's or not) and a line of each."""
        found: dict[str, int] = {}
        for node in _nodes(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.setdefault(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(node.module, node.level)
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    found.setdefault(target if target in known else source, node.lineno)
            elif isinstance(node, ast.Call) and _is_import_module(node):
                for target in self._dynamic(node):
                    found.setdefault(target, node.lineno)
        return found

    def _dynamic(self, call: ast.Call) -> list[str]:
        arg = call.args[0] if call.args else None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return [arg.value]
        if self.name == "amqcli.cli":  # import_module(f"{__name__}.{module}")
            return [f"{self.name}.{m}" for m in _command_modules(self.tree)]
        raise AssertionError(
            f"{self.path}:{call.lineno}: an import_module this test cannot resolve; "
            "teach tests/unit/test_layers.py what it imports")


def _is_import_module(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("import_module", "__import__")


def _load() -> tuple[dict[str, Module], dict[str, dict[str, int]]]:
    modules = {m.name: m for m in map(Module, sorted(PACKAGE.rglob("*.py")))}
    known = set(modules)
    graph = {name: m.imports(known) for name, m in modules.items()}
    return modules, graph


MODULES, GRAPH = _load()


def _internal(name: str) -> dict[str, int]:
    return {t: line for t, line in GRAPH[name].items() if t in MODULES and t != name}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a graph (as a path that returns to its start), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        colour[name] = GREY
        path.append(name)
        for target in sorted(graph[name]):
            if colour[target] == GREY:
                return [*path[path.index(target):], target]
            if colour[target] == WHITE and (cycle := visit(target)):
                return cycle
        path.pop()
        colour[name] = BLACK
        return None

    for name in sorted(graph):
        if colour[name] == WHITE and (cycle := visit(name)):
            return cycle
    return None


def _describe(cycle: list[str]) -> str:
    steps = [f"{a} (line {GRAPH[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
    return "import cycle:\n  " + "\n  ".join(steps)


def test_the_graph_is_read():
    """The parser sees what is there: a lazy import inside a function, the command modules
    loaded through importlib, a TYPE_CHECKING import left out."""
    assert "amqcli.cli.send" in _internal("amqcli.cli")  # importlib, COMMAND_MODULES
    assert "amqcli.errors" in _internal("amqcli.cli")  # from .. import errors
    assert "amqcli.repl.session" in _internal("amqcli.cli.shell")  # inside the command
    assert "amqcli.broker.engine" not in _internal("amqcli.broker.channel")  # TYPE_CHECKING
    assert "pika" in GRAPH["amqcli.backends.rabbitmq"]
    assert len(MODULES) > 40


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"d", "a"}, "d": set()}) == \
        ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle({name: set(_internal(name)) for name in MODULES})
    assert cycle is None, _describe(cycle)


def test_only_the_named_modules_import_the_engine():
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES if not _within(name, "amqcli.broker")
        and not any(_within(name, allowed) for allowed in ENGINE_IMPORTERS)
        for target, line in _internal(name).items() if _within(target, "amqcli.broker")
    ]
    assert not wrong, "the engine imported from outside its importers:\n" + "\n".join(wrong)


def test_pika_only_under_backends():
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES if not _within(name, "amqcli.backends")
        for target, line in GRAPH[name].items() if _within(target, "pika")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_domain_imports_only_itself_and_errors():
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES if _within(name, "amqcli.amqp")
        for target, line in GRAPH[name].items()
        if _within(target, "amqcli") and not _within(target, "amqcli.amqp")
        and target != "amqcli.errors"
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("library", ["typer", "click", "rich", "prompt_toolkit", "pika"])
def test_domain_and_engine_know_no_ui_or_client_library(library):
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES if _within(name, "amqcli.amqp") or _within(name, "amqcli.broker")
        for target, line in GRAPH[name].items() if _within(target, library)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_domain_package_init_is_empty():
    """``import amqcli.amqp.model`` runs ``amqp/__init__.py`` first, on every start."""
    assert (PACKAGE / "amqp" / "__init__.py").read_text(encoding="utf-8").strip() == ""
