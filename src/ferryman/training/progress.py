"""How a run shows its progress: a narrow seam, a silent sink and a Rich progress bar."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


class ProgressSink(Protocol):
    """Told about each batch and epoch of a run; must be cheap."""

    def start(self, total_epochs: int, first_epoch: int, batches_per_epoch: int) -> None: ...

    def batch_done(self, epoch: int, batch: int) -> None: ...

    def epoch_done(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Shows nothing (library use, tests)."""

    def start(self, total_epochs: int, first_epoch: int, batches_per_epoch: int) -> None:
        pass

    def batch_done(self, epoch: int, batch: int) -> None:
        pass

    def epoch_done(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress:
    """Epoch bar with loss, validation metric and ETA, plus a bar for the current epoch."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._epochs: TaskID | None = None
        self._batches: TaskID | None = None

    def start(self, total_epochs: int, first_epoch: int, batches_per_epoch: int) -> None:
        self._progress.start()
        self._epochs = self._progress.add_task(
            "epoch", total=total_epochs, completed=first_epoch, loss="-", val="-"
        )
        self._batches = self._progress.add_task("batch", total=batches_per_epoch, loss="", val="")

    def batch_done(self, epoch: int, batch: int) -> None:
        if self._batches is not None:
            self._progress.update(self._batches, completed=batch + 1)

    def epoch_done(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._epochs is None or self._batches is None:
            return
        loss = metrics.get("train_loss")
        val = metrics.get("val_accuracy")
        self._progress.update(
            self._epochs,
            completed=epoch + 1,
            loss="-" if loss is None else f"{loss:.4f}",
            val="-" if val is None else f"{val:.2%}",
        )
        self._progress.reset(self._batches)

    def close(self) -> None:
        if self._batches is not None:
            self._progress.remove_task(self._batches)
            self._batches = None
        self._progress.stop()
