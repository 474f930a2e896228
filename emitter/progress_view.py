"""Progress bars for long CLI work: one bar per group (done/total from the history count, rate, ETA)."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from emitter.progress import GroupProgress, ProgressBoard


class ProgressView:
    """Draws a `ProgressBoard` with rich while it is entered; a no-op when the console is not a terminal."""

    def __init__(self, board: ProgressBoard, console: Console | None = None) -> None:
        self.board = board
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.0f} msg/s"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> Self:
        self._progress.start()
        self.board.listeners.append(self.update)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for p in self.board.groups.values():
            self.update(p)
        self.board.listeners.remove(self.update)
        self._progress.stop()

    def update(self, p: GroupProgress) -> None:
        """Move the group's bar to its committed count."""
        task = self._tasks.get(p.group.id)
        if task is None:
            name = p.group.title or str(p.group.id)
            task = self._tasks[p.group.id] = self._progress.add_task(name, total=p.total, rate=0.0)
        name = p.group.title or str(p.group.id)
        if p.paused_until is not None:
            when = datetime.fromtimestamp(p.paused_until).astimezone().strftime("%Y-%m-%d %H:%M")
            name = f"{name} (read budget spent: resumes {when})"
        self._progress.update(task, description=name, completed=p.done, total=p.total, rate=p.rate())
