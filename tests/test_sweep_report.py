"""The sweep report: after a real sweep of 4 trials under ASHA (local Ray, SQLite MLflow store; marked slow: about
2 min here), read back, regenerated and opened in headless Chromium; an interrupted sweep's, on a real store.

`make test` checks the report of tests/test_browser.py's tiny sweep in Chromium (check_report_page) instead.
Screenshots go to tmp_path, or to $AESWEEP_SCREENSHOTS when set.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_tuning import children, sweep_cli, the_parent
from tracking.__main__ import main as tracking_main

NAME = "report-sweep"
SECTIONS = {"settings": "Settings", "history": "Optimisation history", "importance": "Parameter importance",
            "intermediate": "Intermediate values by epoch", "slices": "Slice plots", "top-trials": "Top trials",
            "trials": "Trials"}
FIGURES = ("history", "importance", "intermediate", "slices", "top-trials")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    t0 = time.time()
    out = sweep_cli(tmp, "--num-samples", "4", "--max-epochs", "2", "--seed", "0", "--name", NAME)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(uri)
    parent = the_parent(client)
    return {"tmp": tmp, "uri": uri, "client": client, "parent": parent, "kids": children(client, parent.info.run_id),
            "stdout": out.stdout, "seconds": time.time() - t0}


@pytest.mark.slow
def test_every_sweep_writes_its_report_locally_and_on_the_parent(sweep):
    local = sweep["tmp"] / "ray" / NAME / "report" / "index.html"
    assert local.is_file() and f"[aesweep] report: {local}" in sweep["stdout"]
    client, parent = sweep["client"], sweep["parent"]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/index.html", "report/history.png", "report/importance.png", "report/intermediate.png",
            "report/slices.png"} <= logged
    assert any(re.match(r"report/top1-latent_traversal\.png", p) for p in logged)
    page = local.read_text()
    # Self-contained: no resource fetched from anywhere (links to the UI are links, not resources).
    assert not re.search(r'<(img|script|link)[^>]+(src|href)="(?!data:)', page)
    # ASHA's stops as the child runs record them, each named, or none.
    stopped = [k for k in sweep["kids"] if k.data.tags.get("stopped_early") == "true"]
    note = re.search(r'<p class="note" id="stops">(.*?)</p>', page).group(1)
    for kid in stopped:
        assert f"{kid.info.run_name} at epoch {kid.data.tags['stopped_at_epoch']}" in note
    assert note.startswith("Stopped early by ASHA") if stopped else note.startswith("No trial was stopped")
    # Every child linked into the UI by its run id, and the importance evaluator named.
    for kid in sweep["kids"]:
        assert f"/#/experiments/{parent.info.experiment_id}/runs/{kid.info.run_id}" in page
    assert "FanovaImportanceEvaluator" in page


@pytest.mark.slow
def test_command_regenerates_the_report_by_name_or_parent_id(sweep, tmp_path, capsys):
    uri, parent = sweep["uri"], sweep["parent"]
    assert tracking_main(["report", "--tracking-uri", uri, "--sweep", NAME, "--out", str(tmp_path / "a")]) == 0
    assert tracking_main(["report", "--tracking-uri", uri, "--run-id", parent.info.run_id, "--out",
                          str(tmp_path / "b"), "--no-log"]) == 0
    out = capsys.readouterr().out
    assert f"report of sweep {NAME} (4 trials): {tmp_path / 'a' / 'index.html'}" in out
    for d in ("a", "b"):
        files = {p.name for p in (tmp_path / d).iterdir()}
        assert {"index.html", "history.png", "importance.png", "intermediate.png", "slices.png"} <= files
    # the settings table: what varies first (the space's swept keys), then the constants
    page = (tmp_path / "a" / "index.html").read_text()
    varies, same = page.index("varies across trials"), page.index("the same in every trial")
    for key in ("latent_dim", "learning_rate", "kl_weight"):
        assert varies < page.index(f"<td>{key}</td>") < same
    assert same < page.index("<td>hidden</td>")


@pytest.mark.parametrize("args, message", [
    (["--sweep", "never-ran"], "no sweep named 'never-ran' in sqlite:///"),
    (["--run-id", "0123456789abcdef"], "no run '0123456789abcdef'"),
    (["--run-id", "CHILD"], "is not a sweep's parent run"),
])
def test_unknown_sweep_or_run_is_one_line(cut_short, tmp_path, capsys, args, message):
    args = [cut_short["child_id"] if a == "CHILD" else a for a in args]
    code = tracking_main(["report", "--tracking-uri", cut_short["uri"], "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def cut_short(tmp_path_factory):
    """A sweep whose driver died: the parent left RUNNING, a trial KILLED mid-way, one stopped by ASHA, one finished
    (written straight into a real MLflow store as the sweep writes it; no images: a page without them)."""
    tmp_path = tmp_path_factory.mktemp("cut")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("aesweep-vae-digits")
    parent = client.create_run(exp, run_name="cut-short", tags={"sweep": "true"})
    pid = parent.info.run_id
    space = {"latent_dim": {"choice": [4, 8]}, "learning_rate": {"loguniform": [1e-4, 1e-2]}, "kl_weight": 1.0}
    for key, value in {"metric": "val_elbo", "mode": "max", "scheduler": "asha", "space": json.dumps(space),
                       "hidden": "32"}.items():
        client.log_param(pid, key, value)
    trials = [("FINISHED", [1.0, 2.0, 3.0], {}, (4, 1e-3)),
              ("FINISHED", [0.5], {"stopped_early": "true", "stopped_at_epoch": "1"}, (8, 3e-4)),
              ("KILLED", [1.5, 2.5], {}, (8, 5e-3))]
    for i, (status, values, tags, (latent, lr)) in enumerate(trials):
        run = client.create_run(exp, run_name=f"latent={latent} lr={lr}", tags={"mlflow.parentRunId": pid, **tags})
        client.log_param(run.info.run_id, "latent_dim", str(latent))
        client.log_param(run.info.run_id, "learning_rate", str(lr))
        for epoch, value in enumerate(values, start=1):
            client.log_metric(run.info.run_id, "val_elbo", value, step=epoch)
        client.set_terminated(run.info.run_id, status)
    return {"uri": uri, "client": client, "parent_id": pid, "child_id": run.info.run_id}


def test_an_interrupted_sweep_has_its_report(cut_short, tmp_path, capsys):
    uri, client, pid = cut_short["uri"], cut_short["client"], cut_short["parent_id"]
    assert tracking_main(["report", "--tracking-uri", uri, "--sweep", "cut-short", "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "(RUNNING" in page and ">KILLED<" in page and "stopped at epoch 1" in page
    assert "#2 latent=8 lr=0.0003 at epoch 1" in page
    # one trial trained to the end: the importance of every trial's value at epoch 1, the last all reached
    assert "3 trials&#x27; val_elbo at epoch 1, the last epoch all reached" in page
    assert "kl_weight" not in page.split('id="trials"')[1]  # a fixed value of the space is no column
    for png in ("history", "importance", "intermediate", "slices"):
        assert (tmp_path / "r" / f"{png}.png").stat().st_size > 1000
    assert page.count('class="trial"') == 1 and "(no images logged)" in page  # the finished one's card
    assert {a.path for a in client.list_artifacts(pid, "report")} >= {"report/index.html", "report/importance.png"}
    assert tracking_main(["report", "--tracking-uri", uri, "--run-id", pid, "--out", str(tmp_path / "by-id"),
                          "--no-log"]) == 0
    assert (tmp_path / "by-id" / "index.html").is_file()


def test_missing_store_is_one_line(tmp_path, capsys):
    code = tracking_main(["report", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no tracking store at" in err[0]
    assert not (tmp_path / "none.db").exists()


def check_report_page(browser, page_file: Path, screenshot: Path) -> None:
    """Open a report offline in headless Chromium: each section with its title, every figure decoded with a nonzero
    size, each top trial's traversal and samples side by side at least at their own size (tiles >= 64 px), nothing
    fetched but the file itself and its data URIs; a full-page screenshot."""
    fetched = []
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    try:
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(page_file.as_uri(), wait_until="load")
        for ident, title in SECTIONS.items():
            assert page.locator(f"section#{ident} h2").inner_text() == title
        for ident in FIGURES:
            images = page.locator(f"section#{ident} img")
            assert images.count() >= 1, f"section {ident} has no figure"
            sizes = images.evaluate_all("es => es.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            assert all(done and w > 0 and h > 0 for done, w, h in sizes), (ident, sizes)
        cards = page.locator("section#top-trials .trial")
        assert cards.count() >= 1
        for k in range(cards.count()):
            pair = cards.nth(k).locator(".pair img")
            assert pair.count() == 2
            boxes = [pair.nth(i).bounding_box() for i in range(2)]
            natural = pair.evaluate_all("es => es.map(e => [e.naturalWidth, e.naturalHeight])")
            assert all(b["width"] >= w and w >= 64 for b, (w, _) in zip(boxes, natural)), (boxes, natural)
            assert abs(boxes[0]["y"] - boxes[1]["y"]) < 1 and boxes[1]["x"] > boxes[0]["x"]  # side by side
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    assert all(u.startswith(("file:", "data:")) for u in fetched), [u for u in fetched if not u.startswith("data:")]


@pytest.mark.slow
def test_report_opens_offline_in_chromium_with_every_figure(sweep, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    shots = Path(os.environ.get("AESWEEP_SCREENSHOTS") or tmp_path)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            check_report_page(browser, sweep["tmp"] / "ray" / NAME / "report" / "index.html",
                              shots / "report-asha.png")
        finally:
            browser.close()


def new_sweep(client, name: str, params: dict):
    exp = client.get_experiment_by_name("aesweep-vae-digits") or client.get_experiment(
        client.create_experiment("aesweep-vae-digits"))
    parent = client.create_run(exp.experiment_id, run_name=name, tags={"sweep": "true"})
    for key, value in params.items():
        client.log_param(parent.info.run_id, key, value)
    return exp.experiment_id, parent.info.run_id


def child(client, exp, pid, name, params, values, status="FINISHED"):
    run = client.create_run(exp, run_name=name, tags={"mlflow.parentRunId": pid})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value))
    for epoch, value in enumerate(values, start=1):
        client.log_metric(run.info.run_id, "val_elbo", value, step=epoch)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """A finished `--repeats 2` sweep of 3 configurations (6 children, seeds 5 and 6), written straight into a real
    MLflow store; its configurations.json by the sweep's own code (tuning.repeats, tracking.sweep_history)."""
    import mlflow

    from tracking.sweep_history import log_configurations
    from tuning import repeats

    tmp = tmp_path_factory.mktemp("repeats")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(uri)
    space = {"latent_dim": {"choice": [4, 8]}, "learning_rate": {"loguniform": [1e-4, 1e-2]}}
    exp, pid = new_sweep(client, "repeated", {"metric": "val_elbo", "mode": "max", "scheduler": "fifo",
                                              "repeats": "2", "seed": "5", "space": json.dumps(space)})
    # (latent, lr) -> final val_elbo of seed 5 and seed 6: config B is best on average, A has the best single seed
    finals = {(4, 1e-3): (-30.0, -36.0), (8, 3e-4): (-31.0, -31.5), (8, 5e-3): (-40.0, -38.0)}
    rows = []
    for (latent, lr), pair in finals.items():
        for seed, final in zip((5, 6), pair):
            params = {"latent_dim": latent, "learning_rate": lr, "seed": seed}
            run_id = child(client, exp, pid, f"latent={latent} lr={lr} seed={seed}", params, [final - 5, final])
            rows.append(params | {"run_id": run_id, "status": "FINISHED", "stopped_early": False, "val_elbo": final})
    groups = repeats.configurations(rows, ("latent_dim", "learning_rate"), "val_elbo", "max")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(run_id=pid):
            log_configurations(repeats.table(groups, ("latent_dim", "learning_rate"), "val_elbo"), "val_elbo",
                               groups[0])
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_terminated(pid, "FINISHED")
    return {"uri": uri, "pid": pid, "groups": groups, "rows": rows}


def test_a_repeated_sweep_ranks_configurations_by_their_mean(repeated, tmp_path):
    out = tmp_path / "r"
    assert tracking_main(["report", "--tracking-uri", repeated["uri"], "--sweep", "repeated", "--out", str(out),
                          "--no-log"]) == 0
    page = (out / "index.html").read_text()
    section = page.split('<section id="configurations">')[1].split("</section>")[0]
    assert "Configurations (mean ± sd over seeds)" in section
    # ranked by the mean: (8, 3e-4) at -31.25 first although (4, 1e-3) has the best single seed (-30)
    table_rows = re.findall(r"<tr><td class=\"num\">(\d)</td>(.*?)</tr>", section)
    assert [r[0] for r in table_rows] == ["1", "2", "3"]
    for (rank, cells), group in zip(table_rows, repeated["groups"]):
        mean, sd = group["mean"], group["sd"]
        assert f"{mean:.4f} ± {sd:.4f}" in cells
        for row in group["rows"]:  # each seed's value, linked to its run
            assert f"runs/{row['run_id']}\">seed {row['seed']}</a>: {row['val_elbo']:.4f}" in cells
    assert "-31.2500 ± 0.3536" in table_rows[0][1]
    # history and slices per configuration; importance on the means, the spread said
    importance = page.split('<section id="importance">')[1].split("</section>")[0]
    assert "the means over seeds of the 3 configurations" in importance
    assert "between configurations (sd of their means)" in importance
    assert "One point per configuration" in page.split('<section id="history">')[1]
    for png in ("history", "importance", "slices"):
        assert (out / f"{png}.png").stat().st_size > 1000
    assert 'id="pbt"' not in page


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A finished PBT sweep of 3 trials over 4 epochs, exploits at epoch 2 (trial 3 from trial 1) and epoch 4
    (trial 2 from trial 1), written straight into a real MLflow store by the sweep's own writers
    (tracking.sweep_history.record_exploit, log_hyperparameters)."""
    from tracking.sweep_history import log_hyperparameters, record_exploit

    tmp = tmp_path_factory.mktemp("pbt")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(uri)
    space = {"learning_rate": {"loguniform": [1e-4, 1e-2]}, "kl_weight": {"uniform": [0.5, 1.5]}}
    exp, pid = new_sweep(client, "population", {"metric": "val_elbo", "mode": "max", "scheduler": "pbt",
                                                "space": json.dumps(space)})
    start = [(1e-3, 1.0), (3e-4, 0.7), (5e-3, 1.3)]
    ids = [child(client, exp, pid, f"lr={lr} kl={kl}", {"learning_rate": lr, "kl_weight": kl, "latent_dim": 8},
                 [-50 + 4 * e - 3 * n for e in range(1, 5)]) for n, (lr, kl) in enumerate(start)]
    for run_id, (lr, kl) in zip(ids, start):  # step 0: the mutable keys' initial values (tuning.pbt.on_start)
        log_hyperparameters(uri, run_id, 0, {"learning_rate": lr, "kl_weight": kl})
    # an exploit's new values: every swept key, latent_dim copied from the donor (not mutated by PBT)
    exploits = [(ids[2], 2, {"learning_rate": 1.2e-3, "kl_weight": 0.8, "latent_dim": 8}),
                (ids[1], 4, {"learning_rate": 8e-4, "kl_weight": 1.2, "latent_dim": 8})]
    for run_id, epoch, new in exploits:
        record_exploit(uri, run_id, "train_00000", ids[0], epoch, new, {"val_elbo": -45.0})
    client.set_terminated(pid, "FINISHED")
    return {"uri": uri, "pid": pid, "ids": ids, "exploits": exploits, "client": client}


def test_a_pbt_sweep_draws_its_lineage(population, tmp_path):
    out = tmp_path / "p"
    assert tracking_main(["report", "--tracking-uri", population["uri"], "--sweep", "population",
                          "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    section = page.split('<section id="pbt">')[1].split("</section>")[0]
    assert "<h2>PBT lineage</h2>" in section and "Exploits: 2." in section and "kl_weight, learning_rate" in section
    assert (out / "pbt-lineage.png").stat().st_size > 5000 and 'alt="PBT lineage"' in section
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td>(.*?)</tr>", section)
    assert [epoch for epoch, _ in rows] == ["2", "4"]
    for (epoch, cells), (run_id, _, new) in zip(rows, population["exploits"]):
        recipient, donor = cells.split("</td><td>")[:2]
        assert f"runs/{run_id}\"" in recipient and f"runs/{population['ids'][0]}\"" in donor and "#1 " in donor
        assert f"kl_weight={new['kl_weight']}" in cells
    assert "learning_rate=1.2e-3" in rows[0][1] and "learning_rate=8.0e-4" in rows[1][1]
    assert "latent_dim" not in section  # not mutated: no new value of it is shown
    logged = {a.path for a in population["client"].list_artifacts(population["pid"], "report")}
    assert "report/pbt-lineage.png" in logged
    assert 'id="configurations"' not in page


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_real_pbt_sweep_reports_its_lineage(tmp_path):
    """The tiny real PBT sweep of tests/test_pbt.py (2 trials, 4 epochs, perturbation every 2): the report it
    writes at its end has the lineage figure and a row for each exploit its child runs record."""
    out = sweep_cli(tmp_path, "--scheduler", "pbt", "--num-samples", "2", "--max-epochs", "4",
                    "--perturbation-interval", "2", "--hidden", "16", "--seed", "0", "--name", "pbt",
                    "--no-system-metrics", "--max-failures", "0")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    kids = children(client, the_parent(client).info.run_id)
    recorded = sum(int(k.data.tags.get("pbt_exploits", "0")) for k in kids)
    assert recorded, "no trial was exploited: " + out.stdout[-2000:]
    page = (tmp_path / "ray" / "pbt" / "report" / "index.html").read_text()
    section = page.split('<section id="pbt">')[1].split("</section>")[0]
    assert f"Exploits: {recorded}." in section and 'alt="PBT lineage"' in section
    assert len(re.findall(r"<tr><td class=\"num\">\d+</td>", section)) == recorded
    assert (tmp_path / "ray" / "pbt" / "report" / "pbt-lineage.png").stat().st_size > 5000
