"""MLflow tracking: every run logs its configuration, a fingerprint of the input data, metrics,
the published files and the models; the gradient-boosted model is registered and the alias
``champion`` moves to it only when it passes the promotion gates, and only after the output
folder and the history are published (:func:`log_run`, then :func:`finish_run` or
:func:`fail_run`). A run records the process that logs it (tags ``milestones.pid`` and
``milestones.host``); a run left RUNNING by a process that is gone is marked FAILED at the
next run (:func:`fail_orphaned_runs`). Paths of the configuration are logged relative to the
configuration's folder, never as machine paths (:func:`portable_config`).

The registered model runs outside this repository: a models-from-code pyfunc
(:mod:`flows.store.retention_pyfunc`) with the ``models`` and ``features`` packages as its code,
the fitted models saved with skops, and requirements pinned to the versions installed at log
time (:func:`pinned_requirements`). The random forest is logged on its own in MLflow's skops
format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd

from flows.config import Config
from flows.errors import NoChampionError, NotFoundError
from flows.runtime import default_artifact_root, default_tracking_uri
from flows.store import retention_pyfunc
from flows.store.publish import IMPORTANCE_FILES, read_importance
from models.training import MODEL_FORMAT

log = logging.getLogger("milestones")
CHAMPION = "champion"
_TAG_LIMIT = 4000  # characters of the review warnings kept in one MLflow tag
#: the distributions the logged models need, pinned at log time (:func:`pinned_requirements`)
PIP_REQUIREMENTS = ["mlflow", "pandas", "numpy", "scipy", "scikit-learn", "lightgbm", "skops"]
#: the packages shipped with the champion as its code (models imports features)
CODE_PACKAGES = ("models", "features")
FOREST_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def _mlflow(cfg: Config):
    uri = cfg.tracking.tracking_uri
    artifact_root = None
    if uri == default_tracking_uri():
        artifact_root = Path(default_artifact_root()).as_uri()
    elif uri.startswith("sqlite:///"):
        # beside the database, not in MLflow's default ./mlruns of whatever folder we run in
        store = Path(uri[len("sqlite:///") :])
        artifact_root = (store.parent / f"{store.stem}-artifacts").as_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        mlflow.create_experiment(cfg.tracking.experiment, artifact_location=artifact_root)
    mlflow.set_experiment(cfg.tracking.experiment)


def data_fingerprint(cfg: Config, summary: dict | None = None) -> str:
    """A digest of the input files' bytes (or of the database file).

    A warehouse source (``data.url``, or tables of Spark's catalog) is not read twice for a
    digest: its fingerprint is ``url:`` (``table:``) and a digest of the URL as configured (no
    password in it), the table names, and the run's ``as_of`` and row counts from
    ``summary``. It tells runs on different sources or data sizes apart, not every change of
    a value.
    """
    h = hashlib.blake2b(digest_size=16)
    catalog = not cfg.data.url and not all(p.exists() for p in cfg.input_files())
    if cfg.data.url or catalog:  # a warehouse, or tables of Spark's catalog
        s = summary or {}
        for part in (cfg.data.url, cfg.data.accounts, cfg.data.events):
            h.update(str(part).encode() + b"\0")
        for key in ("as_of", "accounts", "events", "live_accounts"):
            h.update(f"{key}={s.get(key)}".encode() + b"\0")
        return ("table:" if catalog else "url:") + h.hexdigest()
    for p in cfg.input_files():
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                continue
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def pinned_requirements(names: list[str] | tuple[str, ...] = tuple(PIP_REQUIREMENTS)) -> list[str]:
    """``name==version`` of each distribution as installed now (importlib.metadata)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in names]


def code_paths() -> list[str]:
    """The folders of the packages the champion imports (shipped as its code)."""
    import importlib

    return [str(Path(importlib.import_module(p).__file__).parent) for p in CODE_PACKAGES]


def _log_models(models: Any, example: pd.DataFrame):
    """Log the random forest (skops) and the champion pyfunc (models-from-code); return the
    pyfunc's model info."""
    from mlflow.models import infer_signature

    requirements = pinned_requirements()
    mlflow.sklearn.log_model(
        models.rf_,
        name="random_forest",
        serialization_format="skops",
        skops_trusted_types=FOREST_TRUSTED_TYPES,
        pip_requirements=requirements,
    )
    signature = None
    if len(example):
        output = retention_pyfunc.RetentionPyfunc(models).predict(None, example)
        signature = infer_signature(example, output, params=retention_pyfunc.DEFAULT_PARAMS)
    with tempfile.TemporaryDirectory(prefix="milestones-model-") as tmp:
        saved = str(Path(tmp) / "retention_models.skops")
        retention_pyfunc.save_models(models, saved)
        return mlflow.pyfunc.log_model(
            name="retention_model",
            python_model=retention_pyfunc.__file__,
            artifacts={retention_pyfunc.ARTIFACT: saved},
            code_paths=code_paths(),
            signature=signature,
            input_example=example if len(example) else None,
            pip_requirements=requirements,
        )


def current_champion(cfg: Config) -> dict | None:
    """The champion's version, run id and test AUC, or None when there is none yet."""
    _mlflow(cfg)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(cfg.tracking.model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:  # no such model or alias yet
        return None
    run = client.get_run(mv.run_id)
    return {
        "version": int(mv.version),
        "run_id": mv.run_id,
        "gbm_roc_auc": run.data.metrics.get("gbm_roc_auc"),
        "model_format": run.data.tags.get("model_format"),  # None: saved before formats
    }


def _other_format(champ: dict | None) -> str | None:
    """Why the champion's model cannot be read by this version, or None when it can."""
    if champ is None or champ.get("model_format") in (None, MODEL_FORMAT):
        return None
    return (
        f"the champion (version {champ['version']}, run {champ['run_id']}) was saved in model "
        f"format {champ['model_format']}; this version of milestones reads format {MODEL_FORMAT}"
    )


def log_run(cfg: Config, staging: Path, trained: dict, summary: dict) -> dict:
    """Log one pipeline run and register its model; decide the promotion, move nothing.

    Returns ``{"run_id", "gate"}``; the MLflow run stays RUNNING until :func:`finish_run`
    (after publication: moves the alias when the gate passed) or :func:`fail_run`. A failure
    while logging marks the run FAILED.
    """
    import warnings

    _mlflow(cfg)
    fail_orphaned_runs(cfg)
    run = mlflow.start_run(run_name=f"pipeline {summary['as_of'][:10]}", tags=_owner_tags())
    try:
        with warnings.catch_warnings():
            # MLflow warns about integer columns in signatures: not actionable for a user.
            warnings.simplefilter("ignore")
            gate = _log_run(cfg, staging, trained, summary, run.info.run_id)
    except BaseException as exc:
        fail_run(cfg, run.info.run_id, exc)
        raise
    return {"run_id": run.info.run_id, "gate": gate}


def _owner_tags() -> dict[str, str]:
    return {"milestones.pid": str(os.getpid()), "milestones.host": socket.gethostname()}


def _process_gone(pid: str | None) -> bool:
    if not (pid or "").isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fail_orphaned_runs(cfg: Config) -> list[str]:
    """Mark FAILED the runs of the experiment left RUNNING by a process of this host that is
    gone (a killed run); returns their ids. Runs of other hosts are left as they are."""
    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return []
    host = socket.gethostname()
    failed = []
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get("milestones.pid")
        if tags.get("milestones.host") != host or pid == str(os.getpid()):
            continue
        if _process_gone(pid):
            client.set_tag(
                run.info.run_id, "failure", f"process {pid} on {host} ended during the run"
            )
            client.set_terminated(run.info.run_id, "FAILED")
            failed.append(run.info.run_id)
    if failed:
        log.info("      marked %d orphaned MLflow run(s) FAILED: %s", len(failed), failed)
    return failed


def fail_run(cfg: Config, run_id: str, exc: BaseException | None = None) -> None:
    """Mark the run FAILED (with the error in the tag ``failure``); the champion stays."""
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    try:
        if exc is not None:
            client.set_tag(run_id, "failure", f"{type(exc).__name__}: {exc}"[:_TAG_LIMIT])
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run("FAILED")
        else:
            client.set_terminated(run_id, "FAILED")
    except Exception as err:  # noqa: BLE001 - the original error is the one to report
        log.warning("      could not mark MLflow run %s FAILED: %s", run_id, err)


def finish_run(cfg: Config, logged: dict) -> None:
    """After publication: move ``champion`` when the gate passed; end the run FINISHED."""
    gate = logged["gate"]
    if gate["decision"] == "promoted":
        mlflow.MlflowClient().set_registered_model_alias(
            cfg.tracking.model_name, CHAMPION, gate["version"]
        )
    _end(logged["run_id"])


def _end(run_id: str) -> None:
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run("FINISHED")
    else:
        mlflow.MlflowClient().set_terminated(run_id, "FINISHED")


def portable_config(cfg: Config) -> dict:
    """The configuration as logged: every file path relative to the configuration's folder
    (a path outside it keeps its file name only), so no machine path reaches MLflow."""
    data = json.loads(cfg.model_dump_json(exclude={"base_dir", "source"}))
    base = Path(cfg.base_dir).resolve()

    def portable(value: str | None) -> str | None:
        if not value:
            return value
        p = Path(value)
        if not p.is_absolute():
            return value
        try:
            return p.resolve().relative_to(base).as_posix()
        except ValueError:
            return p.name

    for key in ("accounts", "events", "database"):
        if isinstance(data.get("data", {}).get(key), str):
            data["data"][key] = portable(data["data"][key])
    for key in ("out", "history"):
        if isinstance(data.get(key), str):
            data[key] = portable(data[key])
    uri = data.get("tracking", {}).get("tracking_uri")
    if isinstance(uri, str) and uri.startswith("sqlite:///"):
        data["tracking"]["tracking_uri"] = "sqlite:///" + portable(uri[len("sqlite:///") :])
    return data


def _log_run(cfg: Config, staging: Path, trained: dict, summary: dict, run_id: str) -> dict:
    metrics = trained["metrics"]
    thresholds = json.loads((staging / "thresholds.json").read_text())
    params: dict[str, Any] = {}
    logged_config = portable_config(cfg)
    _flatten("", logged_config, params)
    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    mlflow.log_dict(logged_config, "config.json")
    fingerprint = data_fingerprint(cfg, summary)
    mlflow.set_tags(
        {
            "data_fingerprint": fingerprint,
            "as_of": summary["as_of"],
            "engine": cfg.engine,
            "validation": "passed",
            "model_format": MODEL_FORMAT,
        }
    )
    if (staging / "review.json").is_file():
        mlflow.set_tags(review_tags(json.loads((staging / "review.json").read_text())))
    mlflow.set_tags(verdict_tags(summary, thresholds))
    from models.training import flatten_metrics

    flat = flatten_metrics(metrics)
    for name in ("setup", "activation", "utilization", "maturity"):
        t = thresholds[name].get("threshold")
        if isinstance(t, (int, float)):
            flat[f"threshold_{name}"] = float(t)
    for cat, block in thresholds["maturity"]["categories"].items():
        if isinstance(block.get("threshold"), (int, float)):
            flat[f"threshold_maturity_{cat}"] = float(block["threshold"])
    flat.update(
        {
            "accounts": summary["accounts"],
            "events": summary["events"],
            "live_accounts": summary["live_accounts"],
        }
    )
    mlflow.log_metrics(flat)
    mlflow.log_artifacts(str(staging))

    example = trained.get("example")
    info = _log_models(trained["models"], pd.DataFrame() if example is None else example)
    gate = _promote(cfg, info.model_uri, flat.get("gbm_roc_auc"), run_id)
    mlflow.set_tags({"promotion": gate["decision"], "promotion_reason": gate["reason"]})
    (staging / "promotion.json").write_text(json.dumps(gate, indent=2) + "\n")
    mlflow.log_artifact(str(staging / "promotion.json"))
    return gate


def _promote(cfg: Config, model_uri: str, auc: float | None, run_id: str) -> dict:
    """Register the model; decide whether ``champion`` moves to it (:func:`finish_run` moves
    it, after publication)."""
    previous = current_champion(cfg)
    mv = mlflow.register_model(model_uri, cfg.tracking.model_name)
    margin = cfg.tracking.promotion_margin
    gate = {"version": int(mv.version), "previous": previous, "margin": margin, "test_auc": auc}
    if auc is None:
        gate.update(decision="not_promoted", reason="no test AUC was measured")
    elif _other_format(previous):
        gate.update(decision="promoted", reason=_other_format(previous) + ": replaced")
    elif previous is None or previous.get("gbm_roc_auc") is None:
        gate.update(decision="promoted", reason="first champion")
    elif auc < previous["gbm_roc_auc"] - margin:
        gate.update(
            decision="not_promoted",
            reason=(
                f"test AUC {auc:.4f} is lower than the champion's {previous['gbm_roc_auc']:.4f} "
                f"by more than {margin}"
            ),
        )
    else:
        gate.update(
            decision="promoted",
            reason=(
                f"test AUC {auc:.4f} vs champion {previous['gbm_roc_auc']:.4f} (margin {margin})"
            ),
        )
    log.info(
        "      model version %s %s: %s",
        mv.version,
        gate["decision"].replace("_", " "),
        gate["reason"],
    )
    return gate


def champion(cfg: Config, dest: Path) -> dict:
    """Download the champion run's thresholds (and other outputs) into ``dest``; load its model.

    Raises
    ------
    NoChampionError
        When the registry has no ``champion`` alias for the configured model name yet.
    """
    info = current_champion(cfg)
    if info is None:
        raise NoChampionError(
            f"no champion model '{cfg.tracking.model_name}@{CHAMPION}' in "
            f"{cfg.tracking.tracking_uri}: "
            "train one first with `milestones run --config ...`"
        )
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(info["run_id"])}
    for name in ("thresholds.json", *IMPORTANCE_FILES, "report.html", "summary.json"):
        if name in names:
            local = client.download_artifacts(info["run_id"], name, str(dest))
            Path(local).replace(dest / name)
    if not (dest / "thresholds.json").is_file():
        raise NoChampionError(f"the champion run {info['run_id']} holds no thresholds.json")
    retrain = "train a new one with `milestones run --config ...`"
    if _other_format(info):
        raise NoChampionError(f"{_other_format(info)}: {retrain}")
    try:
        info["model"] = mlflow.pyfunc.load_model(f"models:/{cfg.tracking.model_name}@{CHAMPION}")
    except Exception as exc:  # an unreadable pickle raises whatever its classes raise
        raise NoChampionError(
            f"the champion (version {info['version']}, run {info['run_id']}) cannot be loaded "
            f"({type(exc).__name__}: {exc}); {retrain}"
        ) from exc
    return info


def log_score_run(cfg: Config, staging: Path, summary: dict) -> dict:
    """A light MLflow run for a scoring publication (no training); left RUNNING until
    :func:`finish_run` or :func:`fail_run`. Returns ``{"run_id", "gate"}`` (no promotion)."""
    _mlflow(cfg)
    fail_orphaned_runs(cfg)
    run = mlflow.start_run(run_name=f"score {summary['as_of'][:10]}", tags=_owner_tags())
    try:
        mlflow.set_tags(
            {
                "kind": "score",
                "as_of": summary["as_of"],
                "champion_run_id": summary["champion_run_id"],
                "champion_version": str(summary["champion_version"]),
                "data_fingerprint": data_fingerprint(cfg, summary),
            }
        )
        mlflow.log_metrics({"live_accounts": summary["live_accounts"], "events": summary["events"]})
        mlflow.log_artifacts(str(staging))
    except BaseException as exc:
        fail_run(cfg, run.info.run_id, exc)
        raise
    return {"run_id": run.info.run_id, "gate": {"decision": "scoring"}}


def download_run_files(
    cfg: Config, run_id: str, names: tuple[str, ...], dest: Path
) -> dict[str, Path]:
    """Download the named artifacts of a run into ``dest``; returns those that exist."""
    from mlflow.artifacts import download_artifacts

    uri = cfg.tracking.tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri)
    present = {a.path for a in client.list_artifacts(run_id)}
    got = {}
    for name in names:
        if name not in present:
            continue
        got[name] = Path(
            download_artifacts(
                run_id=run_id, artifact_path=name, dst_path=str(dest), tracking_uri=uri
            )
        )
    return got


def require_run(cfg: Config, run_id: str) -> None:
    """Raise a clear error when ``run_id`` is not a run of the configured store."""
    try:
        mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri).get_run(run_id)
    except Exception:  # noqa: BLE001 - MLflow raises several kinds for an unknown run
        raise NotFoundError(
            f"MLflow run {run_id!r} not found in {cfg.tracking.tracking_uri}"
        ) from None


def previous_champion(cfg: Config) -> dict | None:
    """The champion run's thresholds, importance and test metrics, or None without one.

    Must be called before this run is logged: the champion alias may move to it.
    """
    champion = current_champion(cfg)
    if champion is None:
        return None
    with tempfile.TemporaryDirectory(prefix="milestones-champion-") as tmp:
        files = download_run_files(
            cfg,
            champion["run_id"],
            ("thresholds.json", *IMPORTANCE_FILES, "summary.json"),
            Path(tmp),
        )
        if "thresholds.json" not in files:
            log.warning(
                "      the champion run %s has no thresholds.json; review without it",
                champion["run_id"],
            )
            return None
        summary = json.loads(files["summary.json"].read_text()) if "summary.json" in files else {}
        return {
            "run_id": champion["run_id"],
            "version": champion["version"],
            "as_of": summary.get("as_of"),
            "thresholds": json.loads(files["thresholds.json"].read_text()),
            "importance": read_importance(Path(tmp)),
            "metrics": summary.get("metrics") or {"gbm": {"roc_auc": champion.get("gbm_roc_auc")}},
        }


def verdict_tags(summary: dict, thresholds: dict) -> dict[str, str]:
    """MLflow tags of the data's verdict (issue 13), so that runs can be filtered on it:
    ``usage_beats_baseline`` (``true`` or ``false``), the AUC difference and its interval
    when known, and ``status_<milestone>`` for each milestone (``confirmed``,
    ``unconfirmed`` or ``pinned``; ``unknown`` in a thresholds file from before statuses)."""
    comparison = summary.get("usage_vs_baseline") or {}
    tags = {"usage_beats_baseline": str(bool(summary.get("usage_beats_baseline"))).lower()}
    difference = comparison.get("auc_difference")
    if isinstance(difference, (int, float)):
        tags["usage_auc_difference"] = f"{difference:.4f}"
    ci = comparison.get("ci") or []
    if len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        tags["usage_auc_difference_ci"] = f"{ci[0]:.4f} to {ci[1]:.4f}"
    for name in ("setup", "activation", "utilization", "maturity"):
        tags[f"status_{name}"] = str((thresholds.get(name) or {}).get("status") or "unknown")
    return tags


def review_tags(review: dict) -> dict[str, str]:
    """MLflow tags of a review: its status, the warnings, the champion it was compared with."""
    warnings = review.get("warnings") or []
    text = "; ".join(w["message"] for w in warnings)
    if len(text) > _TAG_LIMIT:
        text = text[: _TAG_LIMIT - 3] + "..."
    tags = {
        "review_status": review.get("status", "ok"),
        "review_warnings": str(len(warnings)),
        "review_compared_with": (review.get("previous") or {}).get("run_id") or "none",
    }
    if text:
        tags["review_warning"] = text
    for kind in sorted({w["kind"] for w in warnings}):
        tags[f"review_warning_{kind}"] = ", ".join(
            w["milestone"] for w in warnings if w["kind"] == kind
        )
    return tags
