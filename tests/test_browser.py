"""A real browser: JupyterLab + headless Chromium run notebook 02 and move the k slider.

The test starts JupyterLab on localhost (a free port, a random token) on a
copy of ``notebooks/02_k_slider_explorer.ipynb``, drives Debian's
``chromium`` through the Python ``playwright`` package (``executable_path``:
no browser download is needed or possible), runs all cells, moves the k
slider with the keyboard, and asserts that the figure under the sliders was
redrawn (its PNG changed).  A screenshot is saved in the test's tmp dir, or in
``$QGAIT_SCREENSHOT_DIR`` when set; its path is printed.

It is skipped, with the reason, only when chromium or playwright is missing.
CI installs both (``apt-get install -y chromium``, ``pip install playwright``).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02_k_slider_explorer.ipynb"
CHROMIUM = os.environ.get("QGAIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


def _requirements() -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"chromium not found at {CHROMIUM} (Debian: apt-get install -y chromium; "
                    f"or set QGAIT_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the Python package 'playwright' is not installed (pip install playwright; "
                    "no browser download is needed, the test uses the system chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """JupyterLab user settings: render every cell (no windowing), no news or update checks."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                             "checkForUpdates": False},
    }
    for name, content in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a copy of notebook 02: yields (base url, token, log path)."""
    _requirements()
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    _write_settings(tmp_path / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ,
           "QGAIT_FAST": "1",
           "QGAIT_DATA_DIR": str(tmp_path / "data"),
           "QGAIT_DATA_SAMPLES": str(REPO / "data_samples"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           # one thread per kernel: oversubscribed OpenMP pools are very slow on small shared machines
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    log = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _image_src(page) -> str | None:
    return page.locator(".widget-output img").first.get_attribute("src")


def test_k_slider_redraws_the_figure(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, log = jupyterlab
    shots = Path(os.environ.get("QGAIT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            kernel_idle = page.get_by_text("Python 3 (ipykernel) | Idle")
            kernel_idle.wait_for(timeout=180_000)

            # Run > Run All Cells, then wait for the explorer's first figure and for the kernel.
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click(".lm-Menu-item:has-text('Run All Cells')")
            page.locator(".widget-output img").first.wait_for(timeout=300_000)
            kernel_idle.wait_for(timeout=300_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t]
            assert not tracebacks, f"a cell failed:\n{tracebacks[0][:2000]}"

            before = _image_src(page)
            assert before and before.startswith("data:image/png"), "the explorer drew no inline figure"
            handle = page.locator(".widget-slider .noUi-handle").first     # the first slider is k
            assert handle.get_attribute("aria-valuenow") == "3.0"
            handle.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "k_slider_before.png"))
            handle.focus()
            for _ in range(4):                                             # k: 3.0 -> 5.0 (step 0.5)
                page.keyboard.press("ArrowRight")
            assert handle.get_attribute("aria-valuenow") == "5.0"

            # Each key press is one change (continuous_update=False): wait for the redraws to finish.
            after = before
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and after == before:
                time.sleep(0.5)
                after = _image_src(page)
            kernel_idle.wait_for(timeout=120_000)
            time.sleep(1.0)
            after = _image_src(page)
            shot = shots / "k_slider_after.png"
            page.screenshot(path=str(shot))
            print(f"\nscreenshots: {shots / 'k_slider_before.png'} and {shot}")
            assert after != before, "moving the k slider did not redraw the figure"
            assert after.startswith("data:image/png")
            assert page.locator(".widget-readout").first.inner_text().strip() == "5.00"
        finally:
            browser.close()
