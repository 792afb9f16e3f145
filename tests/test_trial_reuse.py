"""A sweep's trials reuse their warm processes (Tune's actor reuse), and a reused process trains a trial
exactly as a fresh one does: the state of the trial before it is reset (real local Ray, real MLflow)."""
from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.test_tuning import children, sweep_cli, the_parent
from tuning import timing


@pytest.mark.slow  # a real sweep: about 1 min on 2 cores, 3 when they are shared
def test_trials_reuse_processes_and_train_as_fresh_ones(tmp_path, monkeypatch):
    marks = tmp_path / "timing.jsonl"
    monkeypatch.setenv(timing.ENV, str(marks))  # the trials mark their phases (and pid) here
    # Three trials of one config at 2 at a time: the third runs in a process a trial has used.
    space = tmp_path / "space.yaml"
    space.write_text("latent_dim: {grid: [4]}\nlearning_rate: 0.002\nkl_weight: 1.0\n")
    out = sweep_cli(tmp_path, "--num-samples", "3", "--max-epochs", "2", "--scheduler", "fifo", "--seed", "3",
                    "--space", str(space), "--no-system-metrics")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    events = [json.loads(line) for line in marks.read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 3 and len({e["pid"] for e in starts}) <= 2  # a process ran two trials
    reused = [e for e in starts if sum(s["pid"] == e["pid"] for s in starts if s["t"] < e["t"])]
    assert reused, "no trial ran in a used process"
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    kids = children(client, the_parent(client).info.run_id)
    assert len(kids) == 3 and all(k.info.status == "FINISHED" for k in kids)
    histories = {k.data.tags["ray_trial_id"]: [m.value for m in client.get_metric_history(k.info.run_id, "val_elbo")]
                 for k in kids}
    first = histories[starts[0]["trial"]]
    assert len(first) == 2
    for e in reused:  # the same config and seed: the same training, in a used process as in a fresh one
        assert histories[e["trial"]] == pytest.approx(first, rel=1e-5), histories


@pytest.mark.parametrize("epochs", [1, 2, 5, 10, 17, 20, 60])
def test_a_trial_asha_stops_still_ends_with_its_images(epochs):
    """Images come every quarter of a trial's epochs (not every second epoch), and at every ASHA rung, where a
    trial may stop; single-worker trials reuse their processes, multi-worker ones (coordinators) do not."""
    from dataclasses import replace

    from tracking.callback import image_schedule
    from tuning.__main__ import build_parser, sweep_from_args
    from tuning.sweep import image_cadence, reuse_processes, scheduler

    sweep = sweep_from_args(build_parser().parse_args(["--max-epochs", str(epochs)]))
    asha = scheduler(sweep)
    rungs = [t for bracket in asha._brackets for t, _ in bracket._rungs if t < epochs]  # the scheduler's own
    logged = image_schedule(epochs, image_cadence(sweep))
    assert set(rungs) <= set(logged) and logged[-1] == epochs
    assert len(logged) <= 5 or epochs < 4  # about four image steps, not ten
    assert reuse_processes(sweep) and not reuse_processes(replace(sweep, workers_per_trial=2))
    given = sweep_from_args(build_parser().parse_args(["--max-epochs", str(epochs), "--image-every", "1"]))
    assert image_cadence(given) == 1


@pytest.mark.parametrize("driver_status", [None, "FINISHED", "FAILED"])
def test_a_stopped_trial_thread_keeps_the_status_the_driver_gave_its_run(tmp_path, driver_status):
    """Tune stops a trial (SystemExit) in a reused process only when the next trial takes it: by then the driver
    may have ended the run (tuning.status). The trial's run context keeps that status; else it ends the run KILLED."""
    import mlflow

    from tracking.session import ending_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    run = mlflow.start_run()
    client = MlflowClient(uri)
    with pytest.raises(SystemExit):
        with ending_run(defer_sigterm=False):
            if driver_status:
                client.set_terminated(run.info.run_id, status=driver_status)  # the driver, as tuning.status does
            raise SystemExit(0)
    assert mlflow.active_run() is None
    assert client.get_run(run.info.run_id).info.status == (driver_status or "KILLED")
