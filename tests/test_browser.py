"""The MLflow UI after a real tiny sweep, in a real headless Chromium (Playwright driving Debian's `chromium`).

Screenshots go to tmp_path/screenshots, or to $AESWEEP_SCREENSHOTS when set (how the README's are made:
`AESWEEP_SCREENSHOTS=docs .venv/bin/python -m pytest tests/test_browser.py`).
"""
from __future__ import annotations

import os
import shutil
import struct
import sys
import urllib.parse
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.mlflow_helpers import free_port, process
from tests.test_tuning import children, sweep_cli, the_parent
from tracking.registry import CHAMPION

CHROMIUM = "/usr/bin/chromium"
# the network is closed: nothing that phones home
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
METRIC = "val_elbo"  # the sweep metric this test asks for

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is absent (apt-get install chromium)")


def png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def latest_traversal(client: MlflowClient, run_id: str) -> str:
    """The traversal image of the last logged step (MLflow's log_image keys: images/<key>+step+<n>+...png)."""
    pngs = [a.path for a in client.list_artifacts(run_id, "images")
            if a.path.startswith("images/latent_traversal+step+") and a.path.endswith(".png")]
    assert pngs, f"run {run_id} logged no latent traversal"
    return max(pngs, key=lambda p: int(p.split("+step+")[1].split("+")[0]))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_ui_shows_the_sweep(tmp_path, browser):
    out = sweep_cli(tmp_path, "--num-samples", "2", "--max-epochs", "2", "--scheduler", "fifo",
                    "--metric", METRIC, "--mode", "max")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    parent = the_parent(client)
    kids = children(client, parent.info.run_id)
    assert len(kids) == 2
    (model,) = client.search_registered_models()
    champion = client.get_model_version_by_alias(model.name, CHAMPION)
    image = latest_traversal(client, champion.run_id)
    local = Path(client.download_artifacts(champion.run_id, image, str(tmp_path / "dl")))
    width, height = png_size(local)

    shots = Path(os.environ.get("AESWEEP_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    shutil.copy(local, shots / "champion_traversal.png")

    port = free_port()
    env = {"MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tracking", "ui", "--port", str(port), "--tracking-uri", uri]
    base = f"http://127.0.0.1:{port}"
    exp = parent.info.experiment_id
    with process(cmd, f"{base}/health", env=env, log=open(tmp_path / "ui.log", "wb")):
        page = browser.new_page(viewport={"width": 1920, "height": 1200})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{base}/", wait_until="load")
            page.get_by_text("Model training", exact=True).first.click()  # the UI opens in GenAI mode

            # (a) the parent lists its children, by the names the store holds, in full
            grid_names = open_runs(page, f"{base}/#/experiments/{exp}", parent.info.run_name)
            page.locator('.ag-header-cell[col-id*="Run Name"] .ag-header-cell-resize').first.dblclick()  # autosize
            for name in [parent.info.run_name, *(k.info.run_name for k in kids)]:
                link = grid_names.filter(has_text=name).first
                link.wait_for()
                assert link.inner_text() == name
                assert link.evaluate("e => e.scrollWidth <= e.clientWidth"), f"run name {name!r} is cut off"
            assert grid_names.count() == 3, grid_names.all_inner_texts()
            page.screenshot(path=str(shots / "runs.png"))

            # (b) the champion's traversal loads at its full natural size in the artifact view
            page.goto(f"{base}/#/experiments/{exp}/runs/{champion.run_id}/artifacts", wait_until="load")
            page.get_by_text("images", exact=True).click()
            page.get_by_text(image.split("/", 1)[1], exact=True).click()
            img = page.locator('img[src^="blob:"]').first
            img.wait_for()
            page.wait_for_function("() => [...document.querySelectorAll('img[src^=\"blob:\"]')]"
                                   ".some(e => e.complete && e.naturalWidth > 0)")
            natural, shown = img.evaluate("e => [e.naturalWidth, e.naturalHeight]"), img.bounding_box()
            assert natural == [width, height], (natural, (width, height))
            assert shown["width"] >= width and shown["height"] >= height, (shown, (width, height))
            page.screenshot(path=str(shots / "traversal.png"))

            # (d) the registered model shows its champion alias
            page.goto(f"{base}/#/models/{urllib.parse.quote(model.name)}", wait_until="load")
            page.get_by_text(f"@ {CHAMPION}").first.wait_for()
            page.screenshot(path=str(shots / "model.png"))

            # (c) the chart view opens on the sweep metric's curve (children expanded, as in the table)
            open_runs(page, f"{base}/#/experiments/{exp}", parent.info.run_name)
            page.locator('label:has(input[value="CHART"])').click()
            first = page.locator('[data-testid="experiment-view-compare-runs-card"]').first
            first.locator(".js-plotly-plot").wait_for()
            page.screenshot(path=str(shots / "charts.png"))
            title = first.locator("h4").inner_text()
            paths = first.locator(".scatterlayer .trace path.js-line").evaluate_all(
                "es => es.map(e => e.getAttribute('d'))")
            curves = sum("L" in (d or "") for d in paths)  # a plotted line of two points or more
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            raise
        finally:
            page.close()
    # MLflow orders generated cards by key, sections named by a "/" prefix before "Model metrics"
    assert (title == METRIC or title.endswith(f"/{METRIC}")) and curves >= 1, \
        f"the chart view's first card is {title!r} ({curves} curves), not the {METRIC} curve; see {shots}/charts.png"

    # (e) the sweep's own report (tracking/sweep_report.py), offline: every section with its figures
    from tests.test_sweep_report import check_report_page

    (report,) = (tmp_path / "ray").glob("*/report/index.html")
    check_report_page(browser, report, shots / "sweep_report.png")


def open_runs(page, url: str, parent_name: str):
    """The experiment's runs with the parent expanded (the UI remembers the expansion); the run-name links."""
    page.goto(url, wait_until="load")
    names = page.locator('[col-id="attributes.`Run Name`"] a')
    names.filter(has_text=parent_name).first.wait_for()
    close = page.locator('button[aria-label="Close"]')  # the MLflow Assistant panel takes a third of the width
    if close.count():
        close.first.click()
    if names.count() < 2:
        page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()
        names.nth(1).wait_for()
    return names
