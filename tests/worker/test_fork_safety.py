"""A worker child forked while the embedded broker is inside SQLite must not inherit SQLite's locks.

The scenario of the hang seen in a real run: the worker's main thread polls the SQLite broker while
another thread forks a job child, and the child then calls SQLite (its result backend). Each run
forks many children from a second thread while a first thread polls the broker as fast as it can,
and counts children that do not finish their SQLite call. Without the fix 8 of 2000 such children
hung here (``python tests/worker/test_fork_safety.py`` runs that unpatched control).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import os, sqlite3, sys, threading, time
    from queue import Empty
    from kombu import Connection
    if sys.argv[3] == "patched":
        from worker.celery_app import _tune_sqlalchemy_transport
        _tune_sqlalchemy_transport()
    channel = Connection("sqla+sqlite:///" + sys.argv[1]).channel()
    channel._get_or_create("cpu")
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                channel._get("cpu")
            except Empty:
                pass

    hung = []

    def fork_children():
        for _ in range(int(sys.argv[2])):
            pid = os.fork()
            if pid == 0:  # the child's first SQLite call, as a job child storing its result
                db = sqlite3.connect(":memory:")
                db.execute("create table t (x)")
                db.close()
                os._exit(0)
            deadline = time.monotonic() + 5
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    hung.append(pid)
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.001)

    threading.Thread(target=poll, daemon=True).start()
    time.sleep(0.2)
    forker = threading.Thread(target=fork_children)
    forker.start()
    forker.join()
    stop.set()
    print("hung", len(hung))
""")


def _run(tmp_path: Path, forks: int, mode: str = "patched") -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "broker.db"), str(forks), mode],
                         capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_no_child_hangs_when_forked_during_broker_polling(tmp_path: Path) -> None:
    assert _run(tmp_path, 2000) == 0


if __name__ == "__main__":  # the control: python tests/worker/test_fork_safety.py → hung > 0
    import tempfile

    print(_run(Path(tempfile.mkdtemp()), 2000, "unpatched"))
