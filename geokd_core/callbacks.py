"""The training loop's only window to the outside world, modelled on transformers' TrainerCallback.

The loop knows a list of callbacks. ``TrainerState`` is progress (JSON-serialisable),
``TrainerControl`` is the only thing a callback may change. Every hook has the same signature
``(state, control, **kwargs)``; payload-specific values come in ``kwargs``. The service's event
sink and cooperative cancellation are ordinary callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from geokd_core.events import Event, EventType


@dataclass
class TrainerState:
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    best_metric: float | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainerControl:
    should_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False


class Callback:
    """No-op base class: override the hooks you need."""

    def on_train_begin(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_log(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_evaluate(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_gram_snapshot(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_save(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_train_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None: ...
    def on_event(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        """Every emitted ``Event`` (kwargs["event"]); the service's sink only needs this one."""


class CallbackList:
    """Dispatches one hook to every callback, in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def call(self, hook: str, state: TrainerState, control: TrainerControl, **kwargs: Any) -> TrainerControl:
        for cb in self.callbacks:
            getattr(cb, hook)(state, control, **kwargs)
        return control

    def emit(self, event: Event, state: TrainerState, control: TrainerControl) -> TrainerControl:
        return self.call("on_event", state, control, event=event)


class EventCollector(Callback):
    """Keeps every event in memory (tests, the CLI's summary)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.events.append(kwargs["event"])

    def of_type(self, kind: EventType) -> list[Event]:
        return [e for e in self.events if e.type == kind]


class StopWhen(Callback):
    """Cooperative cancellation: asks ``should_stop()`` after every step."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.should_stop():
            control.should_stop = True
