"""The champion's MLflow pyfunc, logged as models-from-code: it runs outside this repository.

MLflow saves this file with the model and runs it at load time; the model also ships the
``models`` and ``features`` packages (``code_paths``) and the fitted
:class:`models.training.RetentionModels` as a skops file (no pickle), loaded with the fixed
list of trusted types below. So this file imports only MLflow, skops and the shipped packages,
never ``flows``.

Input: snapshot-table rows (the columns of the model's signature). Output, chosen with the
``output`` parameter:

- ``"retention_probability"`` (default): the retention probability of each row;
- ``"risk_drivers"``: the ``risk_drivers`` text of each row (``top`` drivers, default 3; see
  :mod:`models.drivers`), about 0.2 CPU-seconds per 1,000 rows with the default trees;
- ``"both"``: a frame with both columns.
"""

from __future__ import annotations

from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd

ARTIFACT = "retention_models"
#: the types a saved RetentionModels holds beyond skops' defaults (checked when saving)
TRUSTED_TYPES = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "models.training.RetentionModels",
    "sklearn.tree._tree.Tree",
]
OUTPUTS = ("retention_probability", "risk_drivers", "both")
DEFAULT_PARAMS = {"output": "retention_probability", "top": 3}


def save_models(models: Any, path: str) -> None:
    """Save a fitted RetentionModels with skops; refuse a type the loader would not trust."""
    import skops.io as sio

    data = sio.dumps(models)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"the retention models hold types the champion cannot load: {untrusted}")
    with open(path, "wb") as fh:
        fh.write(data)


def load_models(path: str) -> Any:
    """Load a RetentionModels saved by :func:`save_models`."""
    import skops.io as sio

    return sio.load(path, trusted=TRUSTED_TYPES)


class RetentionPyfunc(mlflow.pyfunc.PythonModel):
    """Snapshot rows in; retention probabilities or risk drivers out (see the module)."""

    def __init__(self, models: Any = None):
        self.models = models

    def load_context(self, context) -> None:
        self.models = load_models(context.artifacts[ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        params = {**DEFAULT_PARAMS, **(params or {})}
        output = params["output"]
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        out = {}
        if output != "risk_drivers":
            proba = self.models.predict_retention(model_input)
            out["retention_probability"] = pd.Series(proba, index=model_input.index)
        if output != "retention_probability":
            out["risk_drivers"] = self.models.explain(model_input, top=int(params["top"]))
        if output == "both":
            return pd.DataFrame(out)
        return out[output].rename(output)


mlflow.models.set_model(RetentionPyfunc())
