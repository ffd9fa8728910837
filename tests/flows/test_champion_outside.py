"""The champion runs outside this repository: its code, pinned requirements and skops files.

A real run's champion is loaded with ``mlflow.pyfunc.load_model`` in a subprocess started in
another folder, with the repository off the import path (its folder, the editable install's
finder and path hook removed, and ``import models`` checked to fail before loading); its
probabilities and drivers must equal those computed in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

OUTSIDE = r"""
import importlib.util, json, sys

repo = sys.argv[1]
# the repository off the import path: its folder, the editable install's finder and hook
sys.path[:] = [p for p in sys.path if p not in ("", ".", repo) and "__editable__" not in p]
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [
    h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")
]
sys.path_importer_cache.clear()
for name in ("flows", "models", "features"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"'{name}' is importable before loading the model: the test is void")

import mlflow.pyfunc
import pandas as pd

uri, model_uri = sys.argv[2], sys.argv[3]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
model = mlflow.pyfunc.load_model(model_uri)
rows = pd.read_parquet("rows.parquet")
out = model.predict(rows, params={"output": "both"})
out["default"] = model.predict(rows)
out.to_parquet("scored.parquet")
import models

json.dump({"models_file": models.__file__}, open("where.json", "w"))
"""


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MLFLOW_"))}
    env["OMP_WAIT_POLICY"] = "passive"
    return env


def test_saved_models_load_with_the_fixed_trusted_types(tmp_path):
    from flows.store.retention_pyfunc import RetentionPyfunc, load_models, save_models
    from models.training import RetentionModels

    rng = np.random.default_rng(0)
    n = 400
    used = rng.random(n) < 0.5
    rows = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro"], n),
            "seats": rng.integers(1, 9, n),
            "tenure_days": rng.integers(60, 900, n),
            "a__used": used.astype(int),
            "a__count": used * rng.poisson(3, n),
            "b__used": (rng.random(n) < 0.3).astype(int),
            "b__count": rng.poisson(1, n),
        }
    )
    rows["retained"] = (rng.random(n) < np.where(used, 0.85, 0.4)).astype(int)
    models = RetentionModels(n_estimators=20, min_samples_leaf=10, categories={"c": ["a", "b"]})
    models.fit(rows)
    save_models(models, str(tmp_path / "m.skops"))
    again = load_models(str(tmp_path / "m.skops"))
    np.testing.assert_array_equal(again.predict_retention(rows), models.predict_retention(rows))
    assert again.explain(rows).tolist() == models.explain(rows).tolist()
    both = RetentionPyfunc(again).predict(None, rows.head(4), params={"output": "both"})
    assert list(both.columns) == ["retention_probability", "risk_drivers"]
    with pytest.raises(ValueError, match="output must be one of"):
        RetentionPyfunc(again).predict(None, rows, params={"output": "shap"})
    models.extra_ = pd.Timedelta  # a type the loader does not trust: refused when saving
    with pytest.raises(ValueError, match="cannot load"):
        save_models(models, str(tmp_path / "bad.skops"))


def test_champion_loads_and_scores_outside_the_repository(runs, tmp_path):
    import mlflow
    from mlflow.models import Model

    from flows.config import load_config

    for res in runs["results"]:
        assert res.exit_code == 0, res.output + str(res.exception)
    cfg = load_config(runs["cfg"])
    uri = cfg.tracking.tracking_uri
    model_uri = f"models:/{cfg.tracking.model_name}@champion"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)

    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "m")))
    # logged with its code and pinned requirements, no pickle
    assert (local / "retention_pyfunc.py").is_file()  # the models-from-code file
    assert {"models", "features"} <= {p.name for p in (local / "code").iterdir()}
    assert not list(local.rglob("*.pkl"))
    requirements = (local / "requirements.txt").read_text().split()
    for name in ("pandas", "numpy", "scipy", "scikit-learn", "lightgbm", "skops"):
        assert f"{name}=={version(name)}" in requirements, requirements
    example = Model.load(str(local)).load_input_example(str(local))
    assert len(example) >= 3

    champion = mlflow.pyfunc.load_model(model_uri)
    models = champion.unwrap_python_model().models
    proba = models.predict_retention(example)
    drivers = models.explain(example)
    assert drivers.str.len().gt(0).any()

    outside = tmp_path / "outside"
    outside.mkdir()
    example.to_parquet(outside / "rows.parquet")
    (outside / "score.py").write_text(OUTSIDE)
    done = subprocess.run(
        [sys.executable, "score.py", str(ROOT), uri, model_uri],
        cwd=outside,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    where = json.loads((outside / "where.json").read_text())
    # after loading, `models` is the copy shipped with the model, not the repository's
    assert not Path(where["models_file"]).resolve().is_relative_to(ROOT / "models")
    scored = pd.read_parquet(outside / "scored.parquet")
    assert scored["retention_probability"].between(0, 1).all()
    np.testing.assert_allclose(scored["retention_probability"], proba, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scored["default"], proba, rtol=0, atol=1e-12)
    assert scored["risk_drivers"].tolist() == drivers.tolist()

    # the random forest is logged beside it in MLflow's skops format
    run_id = (
        mlflow.MlflowClient().get_model_version_by_alias(cfg.tracking.model_name, "champion").run_id
    )
    forest = Model.load(f"runs:/{run_id}/random_forest")
    assert forest.flavors["sklearn"]["serialization_format"] == "skops"
