"""A sweep as its MLflow runs hold it: the parent (settings, search space, metric) and one Trial per child run.

    sweep = load_sweep(uri, name="vae-digits-0101-1200")       # or run_id=PARENT; newest sweep when neither
    importances, caption = importance(sweep)                    # fANOVA (optuna.importance) on finished trials

Reads only what the sweep logged (tuning/ writes it, tracking/ never imports tuning/): the parent's params
`metric`, `mode`, `space` (JSON; `<key>.resolved` beside an `mlflow run` parameter given as ''), its tags
`sweep`, `registered_as`; each child's swept params, its metric history, tags `stopped_early`,
`stopped_at_epoch`, `pyfunc_model_uri`, and its logged images; with `--repeats`, the parent's `configurations.json`
(each configuration's mean, sd and values over its seeds); under PBT, each child's tags `pbt_exploit_<n>` (JSON:
donor trial and run, epoch, new values) and the keys of its `pbt/<key>` metrics (the mutated hyperparameters).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

from tracking.params import RESOLVED
from tracking.secrets import safe_uri
from training.errors import UserError

# The sweep's own settings on the parent, shown first among the constants.
SWEEP_SETTINGS = ("metric", "mode", "search", "scheduler", "num_samples", "workers_per_trial", "seed")
# Params on the parent that are not settings: the search space (shown per hyperparameter) and the results.
NOT_SETTINGS = ("space",)


class ReportError(UserError, LookupError):
    """The sweep asked for cannot be found or read; the message says why."""


@dataclass
class Trial:
    number: int  # 1-based, in the order the trials started
    run_id: str
    run_name: str
    status: str
    params: dict
    value: float | None  # the sweep metric's latest value (a stopped trial's: at its stop)
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, metric)
    stopped_at: int | None = None  # the epoch at which the scheduler stopped it
    model_uri: str | None = None
    failure_reason: str | None = None
    exploits: list[dict] = field(default_factory=list)  # PBT: the pbt_exploit_<n> tags, in order

    @property
    def complete(self) -> bool:
        """Trained to the end (Optuna's COMPLETE): FINISHED, not stopped early, with a finite value."""
        return self.status == "FINISHED" and self.stopped_at is None and self.value is not None \
            and math.isfinite(self.value)


@dataclass
class Configuration:
    """One configuration of a sweep with seed repeats, as the parent's configurations.json ranks it; drawn like a
    Trial (number: the order it first started, value: the mean over its seeds)."""
    number: int
    rank: int
    params: dict  # the swept values
    value: float | None  # mean over seeds
    sd: float
    complete: bool  # every seed trained to the end
    seeds: list[Trial]  # its trials, in the order they started
    values: list[float]  # the metric of each seed with one
    best_run_id: str | None = None
    stopped_at: int | None = None
    history: list = field(default_factory=list)

    @property
    def run_name(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def status(self) -> str:
        return "FINISHED" if self.complete else "not every seed trained to the end"


@dataclass
class Sweep:
    uri: str
    run_id: str
    name: str
    experiment_id: str
    experiment_name: str
    status: str
    metric: str
    mode: str
    space: dict  # hyperparameter -> spec ({"loguniform": [lo, hi]}, ...) for the swept ones
    settings: dict  # the parent's other params, resolved
    tags: dict
    trials: list[Trial]
    configurations: list[Configuration] = field(default_factory=list)  # with --repeats, best mean first
    pbt_keys: list[str] = field(default_factory=list)  # hyperparameters PBT mutated (their pbt/<key> metrics)

    def exploits(self) -> list[dict]:
        """Every PBT exploit, by epoch: recipient and donor Trials (donor None when not among the children),
        epoch, index, new values and the donor's trial id."""
        by_run = {t.run_id: t for t in self.trials}
        out = [{"recipient": t, "donor": by_run.get(e.get("donor_run_id")), "donor_trial": e.get("donor_trial"),
                "epoch": e["epoch"], "index": e["index"], "new": e.get("new") or {}}
               for t in self.trials for e in t.exploits]
        return sorted(out, key=lambda e: (e["epoch"], e["recipient"].number))

    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.complete]
        return (max if self.mode == "max" else min)(done, key=lambda t: t.value) if done else None

    def ranked(self) -> list[Trial]:
        """Trials that trained to the end, best first."""
        return sorted([t for t in self.trials if t.complete], key=lambda t: t.value, reverse=self.mode == "max")


def resolved(params: dict) -> dict:
    """Params with `<key>.resolved` folded into `<key>` (the value a sweep used beside `mlflow run`'s '')."""
    out = {k: v for k, v in params.items() if not k.endswith(RESOLVED)}
    out |= {k.removesuffix(RESOLVED): v for k, v in params.items() if k.endswith(RESOLVED)}
    return out


def typed(text: str):
    """A param's text as the number it was when it reads as one."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def find_parent(client: MlflowClient, uri: str, name: str | None, run_id: str | None):
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception:
            raise ReportError(f"no run {run_id!r} in {safe_uri(uri)}; give a sweep's parent run id "
                              f"(tag best_run_id is a child's) or --sweep NAME") from None
        if run.data.tags.get("sweep") != "true":
            raise ReportError(f"run {run_id} is not a sweep's parent run (no tag sweep=true); "
                              f"give the parent's id or --sweep NAME")
        return run
    if name and "'" in name:
        raise ReportError(f"no sweep named {name!r}: sweep names hold no quotes; check --sweep")
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = "tags.sweep = 'true'" + (f" and tags.`mlflow.runName` = '{name}'" if name else "")
    runs = client.search_runs(experiments, filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=50) if experiments else []
    if runs:
        return runs[0]
    if name:
        known = client.search_runs(experiments, filter_string="tags.sweep = 'true'",
                                   order_by=["attributes.start_time DESC"], max_results=5) if experiments else []
        hint = f" (newest: {', '.join(r.info.run_name for r in known)})" if known else ""
        raise ReportError(f"no sweep named {name!r} in {safe_uri(uri)}{hint}; check --sweep or --tracking-uri")
    raise ReportError(f"no sweep in {safe_uri(uri)}; run one (python -m tuning) or pass --tracking-uri")


def load_sweep(uri: str, name: str | None = None, run_id: str | None = None) -> Sweep:
    client = MlflowClient(uri)
    parent = find_parent(client, uri, name, run_id)
    params = resolved(parent.data.params)
    metric, mode = params.get("metric"), params.get("mode")
    if not metric or mode not in ("min", "max"):
        raise ReportError(f"run {parent.info.run_id} holds no sweep metric and mode (params metric, mode)")
    try:
        space = {k: v for k, v in json.loads(params.get("space", "{}")).items() if isinstance(v, dict)}
    except json.JSONDecodeError:  # longer than a param holds: the swept keys come from the children instead
        space = {}
    exp = client.get_experiment(parent.info.experiment_id)
    kids = client.search_runs([parent.info.experiment_id], max_results=5000,
                              filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              order_by=["attributes.start_time ASC"])
    trials = []
    for number, run in enumerate(kids, start=1):
        tags = run.data.tags
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)]
        history = sorted({step: value for step, value in history}.items())  # a retried epoch: its last value
        stopped = tags.get("stopped_at_epoch") if tags.get("stopped_early") == "true" else None
        trials.append(Trial(number=number, run_id=run.info.run_id, run_name=run.info.run_name,
                            status=run.info.status, params={k: typed(v) for k, v in run.data.params.items()},
                            value=run.data.metrics.get(metric), history=history,
                            stopped_at=int(stopped) if stopped and stopped.isdigit() else None,
                            model_uri=tags.get("pyfunc_model_uri"), failure_reason=tags.get("failure_reason"),
                            exploits=exploits_of(tags)))
    pbt_keys = mutated_keys(client, kids)
    if not space:  # every key a child holds is a swept one (children hold only their swept values)
        space = {k: {} for t in trials for k in t.params}
    settings = {k: v for k, v in params.items() if k not in space and k not in NOT_SETTINGS
                and not k.startswith("best.") and v not in ("", "''")}
    return Sweep(uri=uri, run_id=parent.info.run_id, name=parent.info.run_name, experiment_id=exp.experiment_id,
                 experiment_name=exp.name, status=parent.info.status, metric=metric, mode=mode, space=space,
                 settings=settings, tags=parent.data.tags, trials=trials, pbt_keys=pbt_keys,
                 configurations=load_configurations(client, parent.info.run_id, metric, space, trials))


def mutated_keys(client: MlflowClient, kids) -> list[str]:
    """The hyperparameters PBT mutates: a trial logs `pbt/<key>` at step 0 only for those (its initial values);
    an exploit also logs the values it copied from the donor (latent_dim, ...) at its epoch."""
    found: set[str] = set()
    for run in kids:
        if not any(k.startswith("pbt/") for k in run.data.metrics):
            continue
        for key in run.data.metrics:
            name = key.removeprefix("pbt/")
            if key.startswith("pbt/") and key != "pbt/exploit" and not name.startswith("donor_") \
                    and name not in found and any(m.step == 0 for m in client.get_metric_history(run.info.run_id, key)):
                found.add(name)
    return sorted(found)


def exploits_of(tags: dict) -> list[dict]:
    """A child's PBT exploits from its tags `pbt_exploit_<n>` (unreadable ones left out), in order."""
    out = []
    for key, text in tags.items():
        index = key.removeprefix("pbt_exploit_")
        if key.startswith("pbt_exploit_") and index.isdigit():
            try:
                record = json.loads(text)
                out.append(record | {"index": int(index), "epoch": int(record["epoch"])})
            except (ValueError, TypeError, KeyError):
                continue
    return sorted(out, key=lambda e: e["index"])


def load_configurations(client: MlflowClient, run_id: str, metric: str, space: dict,
                        trials: list[Trial]) -> list[Configuration]:
    """The parent's configurations.json (mlflow.log_table: {"columns", "data"}) as Configurations, best first,
    each with its seeds' trials (matched by their swept values); [] for a sweep without repeats."""
    if "configurations.json" not in {a.path for a in client.list_artifacts(run_id)}:
        return []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = json.loads(Path(client.download_artifacts(run_id, "configurations.json", tmp)).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    swept = [k for k in table["columns"] if k in space] or [k for k in space if rows and k in rows[0]]

    def key(values: dict) -> tuple:
        return tuple(repr(typed(str(values.get(k)))) for k in swept)

    out = []
    for row in rows:
        seeds = [t for t in trials if key(t.params) == key(row)]
        values = [float(v) for v in str(row.get(f"{metric}_values") or "").split(",") if v.strip()]
        mean = row.get(f"{metric}_mean")
        ok = isinstance(mean, (int, float)) and math.isfinite(mean)
        out.append(Configuration(number=min((t.number for t in seeds), default=len(trials) + len(out) + 1),
                                 rank=int(row.get("rank") or len(out) + 1),
                                 params={k: typed(str(row[k])) for k in swept if row.get(k) is not None},
                                 value=float(mean) if ok else None, sd=float(row.get(f"{metric}_sd") or 0.0),
                                 complete=bool(row.get("complete")) and ok, seeds=seeds, values=values,
                                 best_run_id=row.get("best_run_id")))
    return sorted(out, key=lambda c: c.rank)


def distribution(spec: dict, values: list):
    """The Optuna distribution of a space spec; from the values tried when the spec is unknown."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind, arg = next(iter(spec.items())) if spec else (None, None)
    if kind in ("uniform", "loguniform"):
        low, high = min([arg[0], *values]), max([arg[1], *values])  # a preset's point may widen the space
        return FloatDistribution(float(low), float(high), log=kind == "loguniform")
    if kind == "randint":  # Tune's upper bound is exclusive
        return IntDistribution(int(min([arg[0], *values])), int(max([arg[1] - 1, *values])))
    if kind in ("choice", "grid"):
        return CategoricalDistribution(list(dict.fromkeys([*arg, *values])))
    if values and all(isinstance(v, (int, float)) for v in values):
        return FloatDistribution(float(min(values)), float(max(values)) + (0.0 if min(values) < max(values) else 1.0))
    return CategoricalDistribution(list(dict.fromkeys(values)))


def is_log(spec: dict) -> bool:
    return bool(spec) and next(iter(spec)) == "loguniform"


def categories(spec: dict, values: list) -> list | None:
    """The categories to plot a hyperparameter over, or None for a numeric axis."""
    kind = next(iter(spec)) if spec else None
    if kind in ("choice", "grid"):
        options = list(dict.fromkeys([*next(iter(spec.values())), *values]))
        return None if all(isinstance(o, (int, float)) for o in options) and len(options) > 6 else options
    return None if all(isinstance(v, (int, float)) for v in values) else list(dict.fromkeys(values))


def choice_value(spec_values: list, value):
    """The category equal to a param read back as text ('16' -> 16, '0.1' -> 0.1)."""
    for option in spec_values:
        if option == value or str(option) == str(value):
            return option
    return value


def importance(sweep: Sweep, seed: int = 0) -> tuple[dict[str, float], str]:
    """Hyperparameter importances by fANOVA (optuna.importance.FanovaImportanceEvaluator, a random forest's
    functional ANOVA, Hutter et al. 2014) over an in-memory Optuna study of the trials that trained to the
    end (Optuna's COMPLETE; if fewer than 2, every trial at the last epoch all reached), with the sweep's search
    space as its distributions; and a sentence saying what was computed."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState, create_trial

    names = [k for k in sweep.space if any(k in t.params for t in sweep.trials)]
    done = [(t, t.value) for t in sweep.ranked() if all(k in t.params for k in names)]
    which = f"the {len(done)} trials that trained to the end"
    if sweep.configurations:  # seed repeats: one point per configuration, its mean over seeds
        done = [(c, c.value) for c in sweep.configurations if c.complete and all(k in c.params for k in names)]
        which = f"the means over seeds of the {len(done)} configurations whose every seed trained to the end"
        if len(done) < 2:
            done = [(c, c.value) for c in sweep.configurations
                    if c.value is not None and all(k in c.params for k in names)]
            which = f"the means over seeds of {len(done)} configurations (fewer than 2 had every seed train to the end)"
    elif len(done) < 2:  # (ASHA stopped the rest) every trial's value at the last epoch they all reached
        reached = [t for t in sweep.trials if t.history and t.status != "FAILED" and all(k in t.params for k in names)]
        epoch = min((t.history[-1][0] for t in reached), default=0)
        done = [(t, v) for t in reached if (v := dict(t.history).get(epoch)) is not None and math.isfinite(v)]
        which = (f"{len(done)} trials' {sweep.metric} at epoch {epoch}, the last epoch all reached (fewer than 2 "
                 f"trained to the end)")
    if len(done) < 2 or not names:
        return {}, f"fANOVA needs at least 2 trials with a value and every swept value; this sweep has {len(done)}"
    from optuna.distributions import FloatDistribution

    dists = {k: distribution(sweep.space[k], [t.params[k] for t, _ in done] + [t.params[k] for t in sweep.trials
                                                                          if k in t.params]) for k in names}
    # Optuna's fANOVA evaluator reads a log distribution's raw values (transform_log=False): a log-uniform range
    # goes in as log10 of its values, uniform on log10 of its bounds, as the search sampled it.
    logs = [k for k in names if isinstance(dists[k], FloatDistribution) and dists[k].log]
    dists |= {k: FloatDistribution(math.log10(dists[k].low), math.log10(dists[k].high)) for k in logs}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if sweep.mode == "max" else "minimize")
    for t, value in done:
        values = {k: choice_value(dists[k].choices, t.params[k]) if hasattr(dists[k], "choices") else
                  math.log10(t.params[k]) if k in logs else t.params[k] for k in names}
        study.add_trial(create_trial(params=values, distributions=dists, value=float(value),
                                     state=TrialState.COMPLETE))
    with warnings.catch_warnings():  # `normalize` is experimental in optuna 5; we normalise below ourselves
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        raw = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed), normalize=False)
    total = sum(raw.values())
    caption = (f"fANOVA (optuna {optuna.__version__}, importance.FanovaImportanceEvaluator, seed {seed}) on "
               f"{which}, over the sweep's search space"
               + (f"; log-uniform {', '.join(logs)} as log10" if logs else ""))
    if not total or not math.isfinite(total):
        return {}, caption + f": the {sweep.metric} of these trials does not vary with their values"
    return dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda kv: -kv[1])), caption


def ui_base(uri: str, given: str | None = None) -> str:
    """Where the MLflow UI of this store is: --ui-url, the server itself for an http(s) store, else what
    `python -m tracking ui` serves."""
    from tracking.secrets import without_credentials

    if given:
        return given.rstrip("/")
    if uri.startswith(("http://", "https://")):
        return without_credentials(uri).rstrip("/")
    return "http://127.0.0.1:5000"


def image_paths(client: MlflowClient, run_id: str, key: str) -> str | None:
    """The last logged step's image `key` of a run (MLflow's log_image: images/<key>+step+<n>+...png)."""
    found = []
    for a in client.list_artifacts(run_id, "images"):
        name = Path(a.path).name
        if name.startswith(f"{key}+step+") and name.endswith(".png"):
            try:
                found.append((int(name.split("+step+")[1].split("+")[0]), a.path))
            except ValueError:
                continue
    return max(found)[1] if found else None


def spread(sweep: Sweep) -> str:
    """With seed repeats, a sentence comparing the seeds' spread within a configuration (the root mean square of
    the configurations' sds) with the spread between configurations (the sd of their means): an importance
    only means something where the second is clearly larger than the first."""
    import statistics

    scored = [c for c in sweep.configurations if c.value is not None]
    within = [c.sd for c in scored if len(c.values) > 1]
    if len(scored) < 2 or not within:
        return ""
    inside = math.sqrt(statistics.fmean([sd * sd for sd in within]))
    between = statistics.stdev([c.value for c in scored])
    return (f"Spread of {sweep.metric}: between configurations (sd of their means) {between:.4g}; within a "
            f"configuration, over its seeds (root mean square of their sds) {inside:.4g}"
            + (" - seeds vary about as much as configurations: read the importances with care"
               if inside >= 0.5 * between else ""))
