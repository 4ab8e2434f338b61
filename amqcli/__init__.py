"""amq: a command-line toolkit and interactive shell for AMQP 0-9-1 messaging."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed package's metadata (the one copy of the
    number is pyproject.toml's) only when asked: it costs a start-up otherwise."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("amqcli")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
