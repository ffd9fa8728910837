"""The report: its pieces on small literal data, and the whole page as a reader sees it.

The browser test opens a real run's ``report.html`` in headless Chromium with the network
switched off, driven through the DevTools protocol (``websockets`` comes with Prefect).
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.report.charts import _place_labels, _position
from flows.report.format import fmt_number
from flows.report.render import render_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


# ----------------------------------------------------------------------------- the browser


class Chromium:
    """Headless Chromium with networking disabled, driven through the DevTools protocol."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 900):
        self.profile = profile
        self.width, self.height = width, height
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        from websockets.sync.client import connect

        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.width},{self.height}",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            self.proc.kill()
            raise RuntimeError("Chromium did not start its DevTools endpoint")
        self.ws = connect(url, max_size=None, open_timeout=20)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Network.emulateNetworkConditions",
            session=True,
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):  # the browser may be gone already
            self.call("Browser.close")
        try:
            self.ws.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            data = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if data.get("id") == msg_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            if "method" in data:
                self.events.append(data)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for e in self.events:
            if e["method"] == method:
                return e
        deadline = time.monotonic() + timeout
        while True:
            data = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if "method" in data:
                self.events.append(data)
                if data["method"] == method:
                    return data

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return res["result"].get("value")

    def screenshot(self) -> bytes:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=self.width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call(
            "Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True
        )
        return base64.b64decode(shot["data"])

    def console_errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]


def open_report(path: Path, profile: Path, screenshot: Path | None = None) -> dict:
    """Open a page; return its text, console errors and requests (and save a screenshot)."""
    with Chromium(profile) as browser:
        url = Path(path).resolve().as_uri()
        browser.open(url)
        text = browser.evaluate("document.body.innerText")
        png = browser.screenshot() if screenshot else None
        if png:
            Path(screenshot).write_bytes(png)
        return {
            "url": url,
            "text": text,
            "errors": browser.console_errors(),
            "requests": browser.requests(),
            "png": png,
        }


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


# ----------------------------------------------------------------------------- unit tests


def test_fmt_number_prints_integers_plainly_and_others_to_three_digits():
    assert fmt_number(20) == "20"
    assert fmt_number(20.0) == "20"
    assert fmt_number(9.705882352941176) == "9.71"
    assert fmt_number(0.00534) == "0.00534"
    assert fmt_number(None) == "–"
    assert fmt_number(float("nan")) == "–"
    assert fmt_number(3361715) == "3,361,715"


def test_position_puts_a_threshold_on_the_edge_of_the_first_bin_reaching_it():
    bins = [
        {"metric_min": 0, "metric_max": 4},
        {"metric_min": 5, "metric_max": 9},
        {"metric_min": 10, "metric_max": 20},
    ]
    assert _position(5, bins) == 0.5
    assert _position(0, bins) == -0.5
    assert _position(15, bins) == pytest.approx(1.5 + 0.5)
    assert _position(99, bins) == 2.5
    assert _position(None, bins) is None


def test_labels_of_crowded_points_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    xs = 0.4 + rng.normal(0, 0.02, 12)
    ys = rng.normal(0, 0.001, 12)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(xs, ys)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.01, 0.01)
    _place_labels(ax, xs, ys, [f"feature_{i}" for i in range(12)], ["#000"] * 12)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, r) for t in ax.texts]  # the text, not its leader line
    plt.close(fig)
    assert len(boxes) == 12
    overlapping = [
        (a, b) for a, b in itertools.combinations(range(12), 2) if boxes[a].overlaps(boxes[b])
    ]
    assert not overlapping


#: retention by bin of the literal evidence curve
_CURVE_RATES = (0.7, 0.72, 0.74, 0.75, 0.86, 0.88, 0.9, 0.9, 0.91, 0.92)


def _run_folder(tmp: Path, review: dict | None = None, curves: dict | None = None) -> Path:
    """A run folder of small literal files, as the pipeline writes them."""
    curve = [
        {"metric_min": lo, "metric_max": lo + 4, "n": 50, "rate": r}
        for lo, r in zip(range(0, 50, 5), _CURVE_RATES, strict=True)
    ]
    evidence = {
        "rate_at_or_above": 0.89,
        "rate_below": 0.73,
        "lift": 1.22,
        "n": 500,
        "share_at_or_above": 0.6,
        "curve": curve,
        "confidence": 0.95,
    }
    cat = {
        "threshold": 2,
        "ci": [1, 3],
        "evidence": {**evidence, "curve": curve[:4]},
        "features": ["a", "b"],
    }
    thresholds = {
        "setup": {
            "rule": "complete all of install within the first 21 days",
            "threshold": 1,
            "ci": [1, 2],
            "steps": ["install"],
            "pinned": False,
            "evidence": {
                "activation_rate_complete": 0.6,
                "activation_rate_incomplete": 0.3,
                "lift": 2.0,
                "by_steps_done": [
                    {"steps_done": 0, "n": 40, "activation_rate": 0.3},
                    {"steps_done": 1, "n": 60, "activation_rate": 0.6},
                ],
            },
            "candidates": {
                "install": {
                    "prevalence": 0.6,
                    "activation_rate_done": 0.6,
                    "activation_rate_not_done": 0.3,
                    "lift": 2.0,
                    "lift_ci": [1.6, 2.4],
                    "selected": True,
                    "reason": "lift",
                },
                "verify": {
                    "prevalence": 0.98,
                    "activation_rate_done": 0.45,
                    "activation_rate_not_done": 0.4,
                    "lift": 1.1,
                    "lift_ci": [0.8, 1.4],
                    "selected": False,
                    "reason": "routine",
                },
            },
        },
        "activation": {
            "rule": "at least 20 conversation_closed in the first 60 days",
            "threshold": 20,
            "ci": [13, 23],
            "pinned": False,
            "evidence": evidence,
        },
        "utilization": {
            "rule": "at least 9.71 conversation_closed per seat per 30 days",
            "threshold": 9.705882352941176,
            "ci": [6.69, 10.02],
            "pinned": False,
            "evidence": evidence,
        },
        "maturity": {
            "rule": "mature in at least 3 of 2 categories",
            "threshold": 3,
            "ci": [3, 3],
            "pinned": False,
            "evidence": evidence,
            "min_categories": 3,
            "categories": {"reporting": cat, "channels": cat},
        },
    }
    summary = {
        "as_of": "2026-06-29 23:59:54",
        "period": ["2024-06-30", "2026-06-29"],
        "engine": "duckdb",
        "seed": 1,
        "accounts": 5000,
        "events": 3361715,
        "live_accounts": 4,
        "validation_ok": True,
        "metrics": {
            "gbm": {"roc_auc": 0.66},
            "rf": {"roc_auc": 0.62},
            "baseline": {"roc_auc": 0.57},
        },
        "prevalence_band": [0.05, 0.9],
    }
    importance = pd.DataFrame(
        {
            "feature": ["report_viewed", "inbox_viewed", "sla_policy_custom"],
            "importance_rf": [0.02, 0.001, 0.004],
            "importance_gbm": [0.01, 0.0, 0.003],
            "importance_rank": [1, 3, 2],
            "prevalence": [0.43, 0.99, 0.03],
            "retention_lift": [1.06, 1.0, 1.1],
            "stratified_lift": [1.06, 1.0, 1.01],
            "verdict": ["milestone_candidate", "table_stakes", "niche"],
            "reason": ["Used by 43.0% of accounts", "Used by 99.0%", "Used by 3.0%"],
        }
    )
    scores = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "stage": ["new", "setup", "mature", "mature"],
            "setup_complete": [False, True, True, True],
            "activated": [False, False, True, True],
            "utilized": [False, False, True, True],
            "mature": [False, False, True, True],
        }
    )
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "thresholds.json").write_text(json.dumps(thresholds))
    (tmp / "summary.json").write_text(json.dumps(summary))
    importance.to_csv(tmp / "importance.csv", index=False)
    scores.to_parquet(tmp / "scores.parquet", index=False)
    if review is not None:
        (tmp / "review.json").write_text(json.dumps(review))
    if curves is not None:
        (tmp / "retention_curves.json").write_text(json.dumps(curves))
    return tmp


def test_report_renders_without_review_or_curves(tmp_path):
    page = render_report(_run_folder(tmp_path))
    assert "This run has no framework review" in page
    assert "This run has no retention curves" in page
    assert "9.71" in page and "13 – 23" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_report_shows_review_warnings_and_curves(tmp_path):
    review = {
        "status": "warning",
        "min_lift": 1.05,
        "warnings": [
            {
                "kind": "threshold_moved",
                "milestone": "activation",
                "message": "activation: the threshold moved from 20 to 41, "
                "outside the previous champion's interval 13 to 23",
            }
        ],
        "cohort": {
            "activation": {
                "cohort": ["2025-11"],
                "outcome": "retention",
                "n_reached": 10,
                "n_not_reached": 12,
                "rate_reached": 0.9,
                "rate_not_reached": 0.8,
                "lift": 1.125,
                "lift_ci": [0.9, 1.4],
                "checked": "retention",
            }
        },
        "previous": {
            "run_id": "abc",
            "thresholds": [
                {
                    "milestone": "activation",
                    "previous": 20,
                    "previous_ci": [13, 23],
                    "current": 41,
                    "change": 21,
                    "outside_previous_ci": True,
                }
            ],
            "auc": [{"model": "gbm", "previous": 0.7, "current": 0.66, "change": -0.04}],
            "prevalence_drift": [
                {
                    "feature": "report_viewed",
                    "prevalence_previous": 0.2,
                    "prevalence_current": 0.43,
                    "psi": 0.24,
                    "band": "moderate",
                }
            ],
        },
    }
    curves = {
        "activation": {
            "anchor": "the end of the activation window",
            "reached": {
                "n": 30,
                "months": [0, 6, 12],
                "share": [1, 0.9, 0.8],
                "at_risk": [30, 25, 20],
            },
            "not_reached": {
                "n": 40,
                "months": [0, 6, 12],
                "share": [1, 0.7, 0.5],
                "at_risk": [40, 30, 20],
            },
        }
    }
    page = render_report(_run_folder(tmp_path, review, curves))
    assert 'role="alert"' in page and "outside the previous champion" in page
    assert "outside the previous interval" in page
    assert "80.0%" in page and "50.0%" in page  # the curves' 12-month shares
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids must be unique across the charts"


# ----------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def demo_run(small_demo, tmp_path_factory, prefect_harness):
    """The second of two consecutive demo runs (made once per session, see test_review):
    its report holds every section, the comparison with the first run included."""
    from test_review import consecutive_runs

    return consecutive_runs(small_demo, tmp_path_factory)["second"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Chromium (make browser installs it)"
)
def test_report_in_headless_chromium(demo_run, tmp_path):
    out = demo_run["out"]
    shot = tmp_path / "report.png"
    seen = open_report(out / "report.html", tmp_path / "profile", screenshot=shot)

    assert seen["errors"] == []
    assert seen["requests"] == [seen["url"]], "the page must load nothing but itself"

    text = seen["text"]
    thr = json.loads((out / "thresholds.json").read_text())
    for name in ("setup", "activation", "utilization", "maturity"):
        m = thr[name]
        assert m["rule"] in text, name
        assert fmt_number(m["threshold"]) in text, name
        assert f"{fmt_number(m['ci'][0])} – {fmt_number(m['ci'][1])}" in text, name
    for step in thr["setup"]["candidates"]:
        assert step in text
    for section in (
        "Summary",
        "The milestones",
        "Retention curves",
        "Framework review",
        "Live accounts by stage today",
    ):
        assert section in text

    pixels = _pixels(shot.read_bytes())
    assert pixels.shape[0] > 3000 and pixels.shape[1] == 1200
    assert pixels.std() > 20
    non_white = (pixels < 235).any(axis=2).mean()
    assert 0.02 < non_white < 0.9


HOSTILE = [r"$\foo$", r"a_$x^2$", "$5 & 10$"]


def test_names_from_the_data_are_drawn_as_text_not_mathtext(tmp_path):
    """An event named `$\\foo$` made matplotlib parse mathtext and crash the report after
    training (exit 1). Every name from the data is drawn as it is spelt."""
    folder = _run_folder(tmp_path)
    thresholds = json.loads((folder / "thresholds.json").read_text())
    setup = thresholds["setup"]
    setup["candidates"] = {
        HOSTILE[0]: setup["candidates"]["install"],
        HOSTILE[1]: setup["candidates"]["verify"],
    }
    setup["steps"] = [HOSTILE[0]]
    maturity = thresholds["maturity"]
    maturity["categories"] = {HOSTILE[2]: maturity["categories"]["reporting"]}
    (folder / "thresholds.json").write_text(json.dumps(thresholds))
    importance = pd.read_csv(folder / "importance.csv")
    importance["feature"] = HOSTILE
    importance.to_csv(folder / "importance.csv", index=False)
    page = render_report(folder)
    for name in HOSTILE:
        shown = name.replace("&", "&amp;")
        assert shown in page, name


def test_html_names_are_shown_as_text_and_unjudged_names_are_counted(tmp_path):
    """Event names are data (issue 12): an HTML or script name is escaped wherever the page
    shows it (table and chart); the names not judged are counted, not drawn."""
    folder = _run_folder(tmp_path)
    importance = pd.read_csv(folder / "importance.csv")
    odd = ["<script>alert(1)</script>", "<b>bold</b>", "'; DROP TABLE events; --"]
    importance["feature"] = (odd + [f"f{i}" for i in range(len(importance))])[: len(importance)]
    importance["judged"] = True
    skipped = importance.iloc[:2].assign(
        feature=["<i>rare</i>", "page_view:home"],
        verdict=["too_rare", "rolled_up"],
        judged=False,
        importance_rf=np.nan,
        importance_gbm=np.nan,
    )
    pd.concat([importance, skipped]).to_csv(folder / "importance.csv", index=False)
    page = render_report(folder)
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<i>rare</i>" not in page and "&lt;i&gt;rare&lt;/i&gt;" not in page
    assert "2 more event names were not judged: 1 too rare" in page
