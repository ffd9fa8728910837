"""Great Expectations' data docs of the input validation: written with the outputs, linked
from the report, browsable by a data engineer (the suites' rules and their results)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import demo_config_text

from flows.config import load_config
from flows.steps.inputs import DATA_DOCS, open_inputs, write_data_docs


def _text(html: str) -> str:
    """The visible words of a page (scripts and tags dropped, spaces folded)."""
    html = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_data_docs_hold_the_suites_and_their_results(small_demo, tmp_path):
    cfg_path = tmp_path / "demo.yaml"
    cfg_path.write_text(
        demo_config_text(small_demo["accounts"], small_demo["events"], "sqlite:///unused.db")
    )
    inputs = open_inputs(load_config(cfg_path))
    index = write_data_docs(tmp_path / "out", inputs)

    assert index == tmp_path / "out" / DATA_DOCS / "index.html"
    page = index.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>") and "</html>" in page
    # the index links each suite's page and each validation result's page, which exist
    linked = re.findall(r"(?:expectations|validations)/[^'\"\s]+\.html", page)
    assert {p.split("/")[1].removesuffix(".html") for p in linked} == {
        "accounts_contract",
        "events_contract",
    }
    assert {p.split("/")[0] for p in linked} == {"expectations", "validations"}
    for rel in linked:
        assert (index.parent / rel).is_file(), rel

    suite = _text((index.parent / "expectations" / "events_contract.html").read_text())
    result_page = next((index.parent / "validations" / "accounts_contract").rglob("*.html"))
    result = _text(result_page.read_text())
    rules = {r["rule"]: r["description"] for r in inputs.validation["results"]}
    for rule in (
        "events.account_id.known",
        "events.quantity.non_negative",
        "events.occurred_at.not_before_signup",
        "events.event.configured",
    ):
        assert rules[rule] in suite, rule
    assert "Status: Succeeded" in result
    # the schema rules run before GE (they decide whether the table can be read at all)
    in_suite = [r for r in rules if r.startswith("accounts.") and ".columns." not in r]
    assert len(in_suite) > 5
    assert re.search(
        rf"Evaluated Expectations {len(in_suite)} Successful Expectations {len(in_suite)} ",
        result,
    )
    # GE's fonts and animations are left out: the site stays small
    size = sum(f.stat().st_size for f in index.parent.rglob("*") if f.is_file())
    assert size < 1_000_000 and not (index.parent / "static" / "images").exists()


def test_the_run_publishes_the_docs_and_the_report_links_them(runs, tmp_path):
    assert runs["results"][0].exit_code == 0, runs["results"][0].output
    out = runs["tmp"] / "first"
    assert (out / DATA_DOCS / "index.html").is_file()
    report = (out / "report.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]*index\.html)"', report)
    assert links == [f"{DATA_DOCS}/index.html"]  # relative: the folder can move
    assert (out / links[0]).is_file()
    # the MLflow run holds the same pages
    logged = list(runs["tmp"].rglob(f"{DATA_DOCS}/index.html"))
    assert any(out not in p.parents for p in logged)

    # a folder without docs (a Spark run) gets no link
    from flows.report.render import write_report

    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns(DATA_DOCS))
    write_report(copy)
    assert f"{DATA_DOCS}/index.html" not in (copy / "report.html").read_text(encoding="utf-8")
    assert not Path(copy / DATA_DOCS).exists()
