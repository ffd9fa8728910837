"""MLflow tags of the data's verdict (issue 13): a run says whether usage beats the baseline
and which milestones the data confirm, so runs can be searched on it."""

from __future__ import annotations

import json

from flows.store.tracking import verdict_tags


def test_verdict_tags_name_usage_and_every_status():
    summary = {
        "usage_beats_baseline": False,
        "usage_vs_baseline": {"auc_difference": -0.0123, "ci": [-0.04, 0.015]},
    }
    thresholds = {
        "setup": {"status": "unconfirmed"},
        "activation": {"status": "pinned"},
        "utilization": {"status": "confirmed"},
        "maturity": {},  # a thresholds file from before statuses
    }
    tags = verdict_tags(summary, thresholds)
    assert tags["usage_beats_baseline"] == "false"
    assert tags["usage_auc_difference"] == "-0.0123"
    assert tags["usage_auc_difference_ci"] == "-0.0400 to 0.0150"
    assert tags["status_setup"] == "unconfirmed" and tags["status_activation"] == "pinned"
    assert tags["status_utilization"] == "confirmed" and tags["status_maturity"] == "unknown"
    assert all(isinstance(v, str) for v in tags.values())
    beats = verdict_tags({"usage_beats_baseline": True, "usage_vs_baseline": None}, {})
    assert beats["usage_beats_baseline"] == "true" and "usage_auc_difference" not in beats


def test_a_run_is_tagged_with_its_verdict(runs):
    import mlflow

    uri = f"sqlite:///{runs['tmp'] / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("milestones-demo")
    run = client.search_runs(
        [exp.experiment_id], filter_string="attributes.run_name LIKE 'pipeline%'"
    )[0]
    tags = run.data.tags
    assert tags["usage_beats_baseline"] in ("true", "false")
    assert {tags[f"status_{n}"] for n in ("setup", "activation", "utilization", "maturity")} <= {
        "confirmed",
        "unconfirmed",
        "pinned",
    }
    # the two runs are of the same data and seed: either folder's files say the same
    summary = json.loads((runs["tmp"] / "first" / "summary.json").read_text())
    thresholds = json.loads((runs["tmp"] / "first" / "thresholds.json").read_text())
    assert tags["usage_beats_baseline"] == str(summary["usage_beats_baseline"]).lower()
    assert tags["status_activation"] == thresholds["activation"]["status"]
