"""Progress bars on stderr for long sends and receives, for a person watching them.

A bar shows only when stderr is a terminal (never in pipes or CI logs) and only once the
work has lasted ``DELAY`` seconds, so quick commands print nothing more than before.
rich is imported when a bar first shows: the plain path of ``amq send`` never loads it.
``send`` and ``receive`` hold a ``Progress`` and call ``advance`` per batch; without a
bar that is one attribute test.
"""

import time
from typing import TYPE_CHECKING, Self

from .env import Environment

if TYPE_CHECKING:
    from rich.progress import Progress as Bar
    from rich.progress import ProgressColumn, Task, TaskID

DELAY = 0.5  # seconds of work before a bar appears


class Progress:
    """Counts messages; shows a rich bar (count, rate, elapsed) once DELAY has passed."""

    def __init__(self, env: Environment | None, description: str = "",
                 total: int | None = None, transient: bool = False) -> None:
        self.env = env  # None: never show anything
        self.description = description
        self.total = total
        self.transient = transient
        self.done = 0
        self.started = time.monotonic()
        self.bar: Bar | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def advance(self, n: int) -> None:
        if self.env is None:
            return
        self.done += n
        if self.bar is None:
            if time.monotonic() - self.started < DELAY:
                return
            self._show()
        self._update()

    def _update(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        """Stop the bar (a transient one is erased); the cursor comes back."""
        if self.bar is not None:
            self._update()
            self.bar.stop()
            self.bar = None
        self.env = None

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import Progress as Bar
        assert self.env is not None
        console = Console(file=self.env.stderr, highlight=False)
        # Not redirecting stdout: messages written meanwhile belong to stdout, not above
        # the bar on stderr.
        self.bar = Bar(*_columns(self.total), console=console, transient=self.transient,
                       redirect_stdout=False, redirect_stderr=False)
        self.task = self.bar.add_task(self.description, total=self.total, completed=self.done)
        self.bar.tasks[-1].start_time = self.started  # elapsed and rate from the start
        self.bar.start()


def _columns(total: int | None) -> "list[ProgressColumn]":
    """What a bar shows: what it does, the bar, the count (of the total), rate, elapsed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: "Task") -> Text:
            elapsed = task.finished_time if task.finished else task.elapsed
            average = task.completed / elapsed if elapsed else None
            speed = average if task.finished else task.speed or average
            return Text(f"{speed:,.0f} msg/s" if speed else "- msg/s", style="cyan")

    count = MofNCompleteColumn() if total else TextColumn("{task.completed:,.0f}")
    return [TextColumn("{task.description}"), BarColumn(), count, RateColumn(),
            TimeElapsedColumn()]


def for_send(env: Environment, bulk: bool) -> Progress:
    """The bar of ``send --lines/--null/--format json`` (erased at the end: the summary
    line says how many were sent)."""
    show = bulk and env.stderr_isatty
    return Progress(env if show else None, "sending", None, transient=True)


def for_receive(env: Environment, count: int | None) -> Progress:
    """The bar of ``receive --count N`` when the messages go to a file or a pipe (on a
    terminal, the messages themselves show the progress)."""
    show = count is not None and count > 1 and env.stderr_isatty and not env.stdout_isatty
    return Progress(env if show else None, "receiving", count)
