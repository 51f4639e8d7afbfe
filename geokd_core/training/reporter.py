"""Everything the loop tells the outside world goes through here: events, hooks, metrics.jsonl."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geokd_core.callbacks import Callback, CallbackList, TrainerControl, TrainerState
from geokd_core.events import Event, EventType


class Reporter:
    """Owns the callback list, the shared ``TrainerState``/``TrainerControl`` and the metrics file.

    ``metric`` and ``eval`` events are also appended to ``out_dir/metrics.jsonl`` (one JSON object
    per line), so a run's history survives without the service.
    """

    def __init__(self, callbacks: Sequence[Callback], out_dir: Path) -> None:
        self.callbacks = CallbackList(callbacks)
        self.state = TrainerState()
        self.control = TrainerControl()
        self.metrics_path = out_dir / "metrics.jsonl"

    def hook(self, name: str, **kwargs: Any) -> TrainerControl:
        return self.callbacks.call(name, self.state, self.control, **kwargs)

    def emit(self, kind: EventType, data: dict[str, Any], step: int | None = None) -> Event:
        event = Event(type=kind, step=self.state.step if step is None else step, data=data)
        if kind in (EventType.METRIC, EventType.EVAL):
            with open(self.metrics_path, "a") as fh:
                fh.write(json.dumps({"type": kind.value, "step": event.step, **data}) + "\n")
        self.callbacks.emit(event, self.state, self.control)
        return event

    def log(self, message: str, level: str = "INFO") -> None:
        self.emit(EventType.LOG, {"level": level, "message": message})

    def metrics(self, values: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in values.items()}
        self.state.log_history.append({"step": self.state.step, **clean})
        self.emit(EventType.METRIC, {"values": clean})
        self.hook("on_log", logs=clean)

    def progress(self) -> None:
        s = self.state
        self.emit(EventType.PROGRESS, {"step": s.step, "total_steps": s.total_steps, "epoch": round(s.epoch, 4)})

    def evaluation(self, split: str, task: str | None, metrics: dict[str, float]) -> None:
        self.emit(EventType.EVAL, {"split": split, "task": task, "metrics": metrics})
        self.hook("on_evaluate", split=split, metrics=metrics)

    def checkpoint(self, path: Path) -> None:
        self.emit(EventType.CHECKPOINT, {"path": str(path)})
        self.hook("on_save", path=path)

    def artifact(self, name: str, path: Path) -> None:
        self.emit(EventType.ARTIFACT, {"name": name, "path": str(path)})
