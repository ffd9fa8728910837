"""Issue 13: the report states first what the data could not confirm (literal run folders)."""

from __future__ import annotations

import json
import re
from html import unescape

from test_report import _run_folder

from flows.report.render import render_report

NO_USAGE = "Product usage does not predict retention in this data"


def _with_verdict(folder, statuses: dict, beats: bool):
    thresholds = json.loads((folder / "thresholds.json").read_text())
    for name, status in statuses.items():
        thresholds[name]["status"] = status
        thresholds[name]["reason"] = f"the reason for {name} <b>"
    (folder / "thresholds.json").write_text(json.dumps(thresholds))
    summary = json.loads((folder / "summary.json").read_text())
    summary["usage_beats_baseline"] = beats
    summary["usage_vs_baseline"] = {
        "beats": beats,
        "auc_usage": 0.66 if beats else 0.56,
        "auc_baseline": 0.57,
        "auc_difference": 0.09 if beats else -0.01,
        "ci": [0.05, 0.12] if beats else [-0.04, 0.02],
        "confidence": 0.95,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _first(tag: str, page: str) -> str:
    body = page[page.index("<body>") :]
    inner = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", body, re.S).group(1)
    return unescape(re.sub(r"<[^>]+>", "", inner))


def test_no_usage_signal_and_unconfirmed_milestones_head_the_report(tmp_path):
    all_unconfirmed = dict.fromkeys(
        ("setup", "activation", "utilization", "maturity"), "unconfirmed"
    )
    page = render_report(_with_verdict(_run_folder(tmp_path), all_unconfirmed, beats=False))
    assert _first("h1", page) == "Customer milestones"
    first = _first("p", page)
    assert first.startswith(NO_USAGE) and "-0.010" in first and "-0.040 to +0.020" in first
    head = page[page.index('id="verdict"') : page.index("</div>", page.index('id="verdict"'))]
    assert "Activation is unconfirmed: the reason for activation &lt;b&gt;" in head  # escaped
    assert head.index("Setup is unconfirmed") < head.index("Maturity is unconfirmed")
    assert "no account is placed above" in page
    assert 'class="callout warn"><b>Unconfirmed:</b> the reason for utilization' in page
    assert "does not predict retention better than plan and seats in this data" in page


def test_a_confirmed_run_says_what_its_stage_is_built_on(tmp_path):
    statuses = {"setup": "confirmed", "activation": "confirmed", "utilization": "unconfirmed"}
    statuses["maturity"] = "pinned"
    page = render_report(_with_verdict(_run_folder(tmp_path), statuses, beats=True))
    first = _first("p", page)
    assert first.startswith("Utilization is unconfirmed: the reason for utilization")
    assert "Product usage predicts retention better than plan and seats" in page
    assert "Milestones the stage is built on: setup (confirmed), activation (confirmed), " in page
    assert "Only setup, activation, maturity gate the stage: utilization is unconfirmed" in page
    assert NO_USAGE not in page
