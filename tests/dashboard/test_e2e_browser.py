"""End to end in a real browser: API + worker + ``geokd dashboard``, driven by headless Chromium.

Submits the demo (synthetic) job through the Submit form, waits for it to finish on the Job page,
checks that the loss curves and a Gram heatmap are drawn, and saves a screenshot to
``test-artifacts/dashboard_job.png``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.utils.live_api import live_api
from tests.utils.live_worker import start_worker

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard(api_url: str, log: Path) -> Iterator[str]:
    """``geokd dashboard --port P`` as a subprocess (the real CLI path), yielding its URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOKD_")}
    env["GEOKD_API_URL"] = api_url
    cmd = [sys.executable, "-c", "from geokd_core.cli import main; main()", "dashboard", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"dashboard exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"dashboard not healthy:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()  # `geokd dashboard` execs streamlit, so this reaches the server itself
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_submit_the_demo_job_and_watch_it_in_a_browser(tmp_path: Path) -> None:
    pytest.importorskip("playwright", reason="needs the `playwright` pip package (no browser download)")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with live_api(tmp_path / "home") as api:
        worker = start_worker(api.base_url, api.worker_token, api.home)
        try:
            with dashboard(api.base_url, tmp_path / "dashboard.log") as url, sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=str(CHROMIUM),
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1440, "height": 1700})
                page.set_default_timeout(60_000)
                page.goto(url)
                key = page.get_by_label("API key", exact=True).and_(page.locator("input"))
                key.fill(api.admin_key)
                key.press("Enter")
                expect(page.get_by_text("Connected")).to_be_visible()

                page.get_by_role("link", name="Submit", exact=True).click()
                page.get_by_label("Name", exact=True).fill("browser-demo")
                page.get_by_label("Steps", exact=True).fill("80")  # small: the test waits for the finish
                page.get_by_label("Steps", exact=True).press("Enter")
                page.get_by_role("button", name="Submit 1 job").click()
                expect(page.get_by_text("Submitted 1 job")).to_be_visible()
                page.get_by_role("link", name="Open browser-demo").click()

                expect(page.get_by_text("SUCCEEDED", exact=True)).to_be_visible(timeout=150_000)
                # The finished page: loss curves, preserved pairs, 3 Gram heatmaps, all drawn by plotly.js.
                expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=30_000)
                for title in ("Feature loss", "Preserved ε-orthogonal pairs", "Teacher − student"):
                    expect(page.locator(".js-plotly-plot").filter(has_text=title)).to_have_count(1)
                heatmap = page.locator(".js-plotly-plot").filter(has_text="Teacher − student")
                expect(heatmap.locator(".heatmaplayer image, .heatmaplayer .hm")).not_to_have_count(0)
                curves = page.locator(".js-plotly-plot").filter(has_text="Feature loss")
                expect(curves.locator(".scatterlayer .trace")).to_have_count(6)  # 3 losses × 2 seeds
                page.wait_for_timeout(1500)  # let plotly finish its transitions before the picture
                page.screenshot(path=str(ARTIFACTS / "dashboard_job.png"), full_page=True)
                browser.close()
            jobs = httpx.get(f"{api.base_url}/api/v1/jobs", params={"name": "browser-demo"}, headers=api.headers)
            assert [(j["status"], j["spec"]["synthetic"]["steps"]) for j in jobs.json()["items"]] == [("SUCCEEDED", 80)]
        finally:
            worker.stop()
