"""Issue 13: on a log where usage carries no information about retention, the run says so.

The demo's accounts keep their plans, seats and events, but their churn dates are drawn again
from the plan alone (:mod:`null_world`). The whole pipeline runs once through the CLI; every
milestone must come out ``unconfirmed`` with its reason, ``usage_beats_baseline`` false, no
feature a milestone candidate, no account placed above ``new``, and the report and the CLI
must say so first. About a minute: slow tier.
"""

from __future__ import annotations

import json
import re
from html import unescape
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import FAST, demo_config_text
from null_world import write_null_world

NO_USAGE = "Product usage does not predict retention in this data"


@pytest.fixture(scope="module")
def null_run(tmp_path_factory, prefect_harness):
    from typer.testing import CliRunner

    from flows.cli import app as cli_app

    root = tmp_path_factory.mktemp("null-usage")
    data = write_null_world(root / "data", n_accounts=1000, seed=3)
    config = root / "null.yaml"
    config.write_text(
        demo_config_text(
            data["accounts"],
            data["events"],
            f"sqlite:///{root}/mlflow.db",
            # the whole history: training needs labels known before the test dates
            **{key: block for key, block in FAST.items() if key != "snapshots"},
        )
    )
    out = root / "out"
    res = CliRunner().invoke(cli_app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return SimpleNamespace(
        output=res.output,
        out=out,
        thresholds=json.loads((out / "thresholds.json").read_text()),
        summary=json.loads((out / "summary.json").read_text()),
        review=json.loads((out / "review.json").read_text()),
    )


@pytest.mark.slow
def test_every_milestone_is_unconfirmed_with_its_reason(null_run):
    for name in ("setup", "activation", "utilization", "maturity"):
        block = null_run.thresholds[name]
        assert block["status"] == "unconfirmed", (name, block["status"], block["reason"])
        assert block["reason"], name
    assert "do not confirm activation" in null_run.thresholds["setup"]["reason"]


@pytest.mark.slow
def test_usage_does_not_beat_the_plan_and_seats_baseline(null_run):
    summary = null_run.summary
    assert summary["usage_beats_baseline"] is False
    comparison = summary["usage_vs_baseline"]
    low, high = comparison["ci"]
    assert low <= 0 and low <= comparison["auc_difference"] <= high
    assert comparison["auc_difference"] == pytest.approx(
        summary["metrics"]["gbm"]["roc_auc"] - summary["metrics"]["baseline"]["roc_auc"]
    )


@pytest.mark.slow
def test_no_feature_is_a_milestone_candidate_and_no_account_gets_a_stage(null_run):
    importance = pd.read_csv(null_run.out / "importance.csv")
    assert "milestone_candidate" not in set(importance["verdict"])
    scores = pd.read_parquet(null_run.out / "scores.parquet")
    assert set(scores["stage"]) == {"new"}
    assert scores["next_step"].str.startswith("No next step").all()


@pytest.mark.slow
def test_the_report_and_the_cli_say_so_first(null_run):
    page = (null_run.out / "report.html").read_text()
    body = page[page.index("<body>") :]
    first_heading = re.search(r"<h[1-6][^>]*>(.*?)</h[1-6]>", body, re.S).group(1)
    first_paragraph = unescape(re.search(r"<p[^>]*>(.*?)</p>", body, re.S).group(1))
    assert first_heading == "Customer milestones"
    assert NO_USAGE in first_paragraph
    verdict = body[: body.index("</div>")]
    for name in ("Setup", "Activation", "Utilization", "Maturity"):
        assert f"{name} is unconfirmed" in verdict, name
    # the run summary's first line (log lines may come before it)
    lines = null_run.output.splitlines()
    summary = [i for i, line in enumerate(lines) if line.startswith(("report: ", NO_USAGE))]
    assert lines[summary[0]].startswith(NO_USAGE), lines


@pytest.mark.slow
def test_the_review_runs_on_a_cohort_after_the_derivation_period(null_run):
    for name, span in null_run.review["periods"].items():
        derived, reviewed = span["derivation"], span["review"]
        assert derived["to"] < reviewed["from"], (name, span)
        assert derived["rows"] > 0 and reviewed["rows"] > 0, (name, span)
