"""ApiEventSink against a recording HTTP server: order, no loss while the API is down, control."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from geokd_core.callbacks import CallbackList, TrainerControl, TrainerState
from geokd_core.events import Event, EventType
from tests.worker.recording_api import RecordingApi
from worker.api_client import WorkerApiClient
from worker.sink import ApiEventSink


def wait_for(cond, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def api():
    with RecordingApi() as server:
        yield server


def make_sink(api: RecordingApi, tmp_path: Path, heartbeat_s: float = 5.0) -> ApiEventSink:
    client = WorkerApiClient(api.url, token="t")
    return ApiEventSink(client, "job-1", "lease-1", tmp_path, flush_interval_s=0.1,
                        heartbeat_interval_s=heartbeat_s).start()


def metric(step: int) -> Event:
    return Event(type=EventType.METRIC, step=step, data={"values": {"train/loss": 1.0 / step}})


def test_events_arrive_in_order_exactly_once(api: RecordingApi, tmp_path: Path) -> None:
    sink = make_sink(api, tmp_path)
    cbs, state, control = CallbackList([sink]), TrainerState(), TrainerControl()
    for step in range(1, 301):
        cbs.emit(metric(step), state, control)
    assert sink.close()
    assert [e["step"] for e in api.rec.events] == list(range(1, 301))
    assert set(api.rec.leases) == {"lease-1"}
    assert api.rec.events[0]["type"] == "metric" and api.rec.events[0]["data"]["values"]["train/loss"] == 1.0


def test_api_down_loses_nothing(api: RecordingApi, tmp_path: Path) -> None:
    sink = make_sink(api, tmp_path)
    state, control = TrainerState(), TrainerControl()
    for step in range(1, 11):
        sink.on_event(state, control, event=metric(step))
    wait_for(lambda: len(api.rec.events) == 10)
    api.down = True
    for step in range(11, 31):
        sink.on_event(state, control, event=metric(step))
    time.sleep(0.6)  # several failed flushes
    assert len(api.rec.events) == 10 and sink.pending() == 20
    api.down = False
    for step in range(31, 41):
        sink.on_event(state, control, event=metric(step))
    assert sink.close(deadline_s=30)
    assert [e["step"] for e in api.rec.events] == list(range(1, 41))


def test_cancel_requested_sets_should_stop(api: RecordingApi, tmp_path: Path) -> None:
    sink = make_sink(api, tmp_path)
    state, control = TrainerState(), TrainerControl()
    sink.on_event(state, control, event=metric(1))
    assert not control.should_stop
    api.cancel = True
    sink.on_event(state, control, event=metric(2))
    wait_for(lambda: sink.cancel_requested)
    sink.on_step_end(state, control)
    assert control.should_stop and not sink.lease_lost
    sink.close()


def test_lost_lease_stops_the_run(api: RecordingApi, tmp_path: Path) -> None:
    sink = make_sink(api, tmp_path)
    state, control = TrainerState(), TrainerControl()
    api.lost = True
    sink.on_event(state, control, event=metric(1))
    wait_for(lambda: sink.lease_lost)
    sink.on_step_end(state, control)
    assert control.should_stop
    sink.close()


def test_idle_sink_heartbeats(api: RecordingApi, tmp_path: Path) -> None:
    sink = make_sink(api, tmp_path, heartbeat_s=0.2)
    wait_for(lambda: api.rec.heartbeats >= 3)
    sink.close()
    assert api.rec.events == []


def test_checkpoint_snapshot_is_uploaded_as_tar(api: RecordingApi, tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last"
    last.mkdir(parents=True)
    (last / "state.pt").write_bytes(b"step-20")
    sink = make_sink(api, tmp_path)
    state, control = TrainerState(step=20), TrainerControl()
    sink.on_event(state, control, event=Event(type=EventType.CHECKPOINT, step=20, data={"path": str(last)}))
    # The engine overwrites its checkpoint right after; the upload must still carry step 20.
    (last / "state.pt").write_bytes(b"step-40")
    assert sink.close()
    assert len(api.rec.checkpoints) == 1
    with tarfile.open(fileobj=io.BytesIO(api.rec.checkpoints[0])) as tar:
        member = tar.extractfile("checkpoints/last/state.pt")
        assert member is not None and member.read() == b"step-20"
    assert [e["type"] for e in api.rec.events] == ["checkpoint"]
