"""A real browser: JupyterLab + headless Chromium run every notebook, and move notebook 04's k slider.

The tests start JupyterLab on localhost (a free port, a random token) on
copies of the course notebooks and drive Debian's ``chromium`` through the
Python ``playwright`` package (``executable_path``: no browser download is
needed or possible).

* Every notebook, in order, in one working folder: Run All Cells, then assert
  that no output is an error, that no output shows a line or a value of the
  reference solutions, and that no figure is shrunk to fit (in a 1,500-px
  window with the file browser open; the figures' fonts are then at least
  10 pt as drawn). Each
  figure is saved as a screenshot for review.
* Notebook 04: moving the k slider with the keyboard redraws the figure under
  the sliders (its PNG changes).

Screenshots go to the test's tmp dir, or to ``$QGAIT_SCREENSHOT_DIR`` when set;
their folder is printed.

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
NOTEBOOK = REPO / "notebooks" / "04_k_slider_explorer.ipynb"
ALL_NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
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
def jupyterlab(request, tmp_path):
    """A JupyterLab server on copies of the notebooks (``request.param``: which): yields (url, token, log)."""
    _requirements()
    root = tmp_path / "lab"
    root.mkdir()
    for notebook in getattr(request, "param", [NOTEBOOK]):
        shutil.copy(notebook, root / notebook.name)
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


def _shots(tmp_path) -> Path:
    shots = Path(os.environ.get("QGAIT_SCREENSHOT_DIR") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def _run_all_and_wait(page, timeout: float) -> None:
    """Run > Run All Cells, then wait until every code cell has run (no '[*]' or '[ ]' prompt is left)."""
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item:has-text('Run All Cells')")
    deadline = time.monotonic() + timeout
    pending = None
    while time.monotonic() < deadline:
        time.sleep(1.0)
        pending = page.evaluate("""() => [...document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
            .filter(p => /\\[[ *]?\\]/.test(p.textContent)).length""")
        if pending == 0:
            return
    raise AssertionError(f"{pending} cells had not finished after {timeout:.0f} s")


def _shut_down_kernels(base: str, token: str) -> None:
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as response:
        sessions = json.loads(response.read())
    for session in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()


@pytest.mark.parametrize("jupyterlab", [ALL_NOTEBOOKS], indirect=True, ids=["all-notebooks"])
def test_every_notebook_runs_in_jupyterlab_without_errors_or_solutions(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    from test_notebooks import _solution_values
    from exercise_support import INSTRUCTOR
    from qgait_lab.lab.course.release import solution_lines

    base, token, log = jupyterlab
    shots = _shots(tmp_path)
    leaks = solution_lines(INSTRUCTOR / "solutions")
    saved = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # 1,500 px: JupyterLab's output area is then about 1,070 px wide with the file browser open,
            # the width at which the review saw the figures.
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            for notebook in ALL_NOTEBOOKS:
                stem = notebook.stem
                page.goto(f"{base}/lab/tree/{notebook.name}?reset&token={token}")      # no restored tabs
                page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=120_000)
                page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=180_000)
                _run_all_and_wait(page, timeout=900)
                panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
                stderr = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                tracebacks = [t for t in stderr.all_inner_texts() if "Traceback" in t or "Error" in t[:200]]
                assert not tracebacks, f"{stem}: a cell failed in JupyterLab:\n{tracebacks[0][:2000]}"
                shown = "\n".join(panel.locator(".jp-OutputArea").all_inner_texts())
                for line in leaks[f"nb{stem[:2]}"]:
                    assert line not in shown, f"{stem}: JupyterLab shows the solution line {line!r}"
                for form in _solution_values(stem[:2]):
                    assert form not in shown, f"{stem}: JupyterLab shows the reference answer {form!r}"
                images = panel.locator(".jp-OutputArea-output img")
                for i in range(images.count()):
                    img = images.nth(i)
                    img.scroll_into_view_if_needed()
                    natural, shown_width = img.evaluate("e => [e.naturalWidth, e.clientWidth]")
                    assert natural <= 1.04 * shown_width, \
                        f"{stem}: figure {i + 1} is {natural} px wide but shown at {shown_width} px: its fonts shrink"
                    img.screenshot(path=str(shots / f"{stem}_figure{i + 1:02d}.png"))
                    saved += 1
                page.screenshot(path=str(shots / f"{stem}_page.png"))
                _shut_down_kernels(base, token)
            print(f"\n{saved} figure screenshots in {shots}")
        finally:
            browser.close()


def _image_src(page) -> str | None:
    return page.locator(".widget-output img").first.get_attribute("src")


def test_k_slider_redraws_the_figure(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, log = jupyterlab
    shots = _shots(tmp_path)
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
