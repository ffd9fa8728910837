"""Issue 13 on the shared small demo run (``runs``, made once per session): every output
carries the data's verdict, and the scores act on it."""

from __future__ import annotations

import json
import re
from html import unescape

import pandas as pd

from models.verdict import STATUSES, verdict_lines

MILESTONES = ("setup", "activation", "utilization", "maturity")
RUNG = {
    "setup": "setup",
    "activation": "activated",
    "utilization": "utilized",
    "maturity": "mature",
}


def test_thresholds_summary_and_review_carry_the_verdict(runs):
    out = runs["tmp"] / "first"
    thresholds = json.loads((out / "thresholds.json").read_text())
    for name in MILESTONES:
        block = thresholds[name]
        assert block["status"] in STATUSES and block["reason"], name
        assert block["evidence"]["derivation_period"]["rows"] > 0, name
    for cat in thresholds["maturity"]["categories"].values():
        assert cat["status"] in STATUSES

    summary = json.loads((out / "summary.json").read_text())
    assert isinstance(summary["usage_beats_baseline"], bool)
    comparison = summary["usage_vs_baseline"]
    assert comparison["beats"] is summary["usage_beats_baseline"]
    low, high = comparison["ci"]
    assert low <= comparison["auc_difference"] <= high
    assert summary["usage_beats_baseline"] is (low > 0)

    review = json.loads((out / "review.json").read_text())
    for name in MILESTONES:
        derived, reviewed = review["periods"][name]["derivation"], review["periods"][name]["review"]
        assert derived["to"] < reviewed["from"], (name, review["periods"][name])
        assert derived == thresholds[name]["evidence"]["derivation_period"]
        block = review["cohort"][name]
        if block is not None:
            checked = block["activation"] if name == "setup" else block
            assert checked["review_period"] == reviewed, name
            assert len(checked["lift_ci"]) == 2


def test_scores_report_and_cli_act_on_the_statuses(runs):
    out = runs["tmp"] / "first"
    thresholds = json.loads((out / "thresholds.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    unconfirmed = [n for n in MILESTONES if thresholds[n]["status"] == "unconfirmed"]
    scores = pd.read_parquet(out / "scores.parquet")
    # an unconfirmed milestone's rung is never a stage
    assert not set(scores["stage"]) & {RUNG[n] for n in unconfirmed}

    lines = verdict_lines(thresholds, summary["usage_vs_baseline"])
    page = (out / "report.html").read_text()
    body = page[page.index("<body>") :]
    first_paragraph = unescape(re.search(r"<p[^>]*>(.*?)</p>", body, re.S).group(1))
    assert re.sub(r"<[^>]+>", "", first_paragraph) == lines[0]
    output = runs["results"][0].output
    assert output.index(lines[0]) < output.index("report: ")
