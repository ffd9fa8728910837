"""The configuration: defaults, relative paths, and errors that name the key path."""

from pathlib import Path

import pytest

from flows.config import load_config
from flows.errors import ConfigError

MINIMAL = """
data:
  accounts: accounts.parquet
  events: sub/events.csv
milestones:
  activation: {event: invoice_sent, window_days: 60}
  utilization: {event: invoice_sent}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_and_relative_paths(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.retention.horizon_days == 180
    assert cfg.milestones.setup.window_days == 21
    assert cfg.milestones.utilization.per_seat is True
    assert cfg.engine == "duckdb"
    assert cfg.data.events == str((tmp_path / "sub" / "events.csv").resolve())
    assert cfg.data.accounts == str((tmp_path / "accounts.parquet").resolve())
    assert cfg.trailing_days == cfg.milestones.maturity.window_days


def test_design_example_parses():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "demo.yaml")
    assert cfg.milestones.activation.event == "conversation_closed"
    assert set(cfg.milestones.maturity.categories) >= {"channels", "reporting"}
    named = cfg.configured_events()
    assert named["install_messenger"] == "milestones.setup.steps"
    assert named["report_viewed"] == "milestones.maturity.categories.reporting"


def test_wrong_type_names_the_key_path(tmp_path):
    text = MINIMAL.replace("window_days: 60", "window_days: sixty")
    with pytest.raises(
        ConfigError,
        match=r"milestones\.activation\.window_days: expected a positive integer, got 'sixty'",
    ):
        load_config(write(tmp_path, text))


def test_negative_window_is_rejected(tmp_path):
    text = MINIMAL.replace("window_days: 60", "window_days: -3")
    with pytest.raises(
        ConfigError,
        match=r"milestones\.activation\.window_days: expected a positive integer, got -3",
    ):
        load_config(write(tmp_path, text))


def test_unknown_key_is_named(tmp_path):
    text = MINIMAL + "retention:\n  horizon_dayz: 90\n"
    with pytest.raises(ConfigError, match=r"retention\.horizon_dayz: unknown key"):
        load_config(write(tmp_path, text))


def test_missing_required_key_is_named(tmp_path):
    text = MINIMAL.replace("  utilization: {event: invoice_sent}\n", "")
    with pytest.raises(ConfigError, match=r"milestones\.utilization: required key is missing"):
        load_config(write(tmp_path, text))


def test_bad_engine_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"engine: .*'duckdb'.*'spark'"):
        load_config(write(tmp_path, MINIMAL + "engine: oracle\n"))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_not_yaml_mapping(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_overrides(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), engine="spark", **{"data.as_of": "2026-01-31"})
    assert cfg.engine == "spark"
    assert cfg.data.as_of.isoformat() == "2026-01-31T00:00:00"


def test_maturity_pin_must_name_a_category(tmp_path):
    text = MINIMAL + "  maturity:\n    categories: {a: [x]}\n    thresholds: {b: 2}\n"
    with pytest.raises(
        ConfigError, match=r"milestones\.maturity: thresholds names unknown category 'b'"
    ):
        load_config(write(tmp_path, text))


def test_resolved_once_at_load(tmp_path, monkeypatch):
    """Paths, as_of and the tracking store are settled by load_config, whatever the cwd."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    text = (
        MINIMAL.replace("data:\n", "data:\n  as_of: '2026-03-01T02:00:00+02:00'\n")
        + "tracking:\n  tracking_uri: sqlite:///store/mlflow.db\nout: results\nhistory: h.duckdb\n"
    )
    cfg = load_config(write(tmp_path, text))
    monkeypatch.chdir(tmp_path / "..")
    assert cfg.data.as_of.isoformat() == "2026-03-01T00:00:00"  # naive UTC
    assert cfg.tracking.tracking_uri == f"sqlite:///{(tmp_path / 'store' / 'mlflow.db').resolve()}"
    assert cfg.out_dir == (tmp_path / "results").resolve()
    assert cfg.history_file(cfg.out_dir) == (tmp_path / "h.duckdb").resolve()
    assert cfg.source == (tmp_path / "cfg.yaml").resolve()


def test_tracking_store_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    assert load_config(write(tmp_path, MINIMAL)).tracking.tracking_uri == (
        "sqlite:////tmp/elsewhere.db"
    )


def test_a_configuration_that_is_not_utf8_is_named(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_bytes(MINIMAL.replace("invoice_sent", "factur\xe9").encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize("name", ["<script>", "a&b", "x/y", "tab\there", "quote'"])
def test_maturity_category_names_must_be_plain_words(tmp_path, name):
    """They become MLflow parameter keys and labels: `<` or `&` failed the run at logging."""
    text = MINIMAL + f"  maturity:\n    categories: {{{name!r}: [x]}}\n"
    with pytest.raises(ConfigError, match=r"milestones\.maturity\.categories: .*plain words"):
        load_config(write(tmp_path, text.replace("\\t", "\t")))


def test_plain_maturity_category_names_pass(tmp_path):
    text = MINIMAL + "  maturity:\n    categories: {'Team chat v2.0': [x], self-serve_1: [y]}\n"
    cfg = load_config(write(tmp_path, text))
    assert list(cfg.milestones.maturity.categories) == ["Team chat v2.0", "self-serve_1"]


def test_as_of_beyond_the_clock_is_refused(tmp_path):
    text = MINIMAL.replace(
        "  events: sub/events.csv\n", "  events: sub/events.csv\n  as_of: 2200-01-01\n"
    )
    with pytest.raises(ConfigError, match=r"data\.as_of: .*future of this machine's clock"):
        load_config(write(tmp_path, text))
    text = MINIMAL.replace(
        "  events: sub/events.csv\n", "  events: sub/events.csv\n  as_of: 9999-12-31\n"
    )
    with pytest.raises(ConfigError, match=r"data\.as_of: "):
        load_config(write(tmp_path, text))


def test_duckdb_memory_limit_is_checked_and_reaches_the_connection(tmp_path):
    """duckdb.memory_limit (default 4GB) is DuckDB's own setting on the run's connection; a
    value DuckDB cannot read is a configuration error naming the key."""
    from features.io import connect
    from flows.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    base = (
        "data: {accounts: a.csv, events: e.csv}\n"
        "milestones:\n  activation: {event: x}\n  utilization: {event: x}\n"
    )
    path.write_text(base)
    assert load_config(path).duckdb.memory_limit == "4GB"
    path.write_text(base + "duckdb: {memory_limit: 1GB, temp_directory: spill}\n")
    cfg = load_config(path)
    assert cfg.duckdb.temp_directory == str(tmp_path / "spill")
    con = connect(memory_limit=cfg.duckdb.memory_limit)
    limit = con.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.replace(" ", "") in ("953.6MiB", "1.0GiB", "1GB")
    path.write_text(base + "duckdb: {memory_limit: lots}\n")
    with pytest.raises(ConfigError, match=r"duckdb\.memory_limit"):
        load_config(path)
