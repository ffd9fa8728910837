"""Validation of the data contract: every rule on a small broken input, as Parquet and as CSV.

The inputs are a few hand-written rows written into ``tmp_path`` and read back with
``features.io``, so the rules see exactly what the pipeline sees. Great Expectations is
imported once (by the module-scoped fixture) and each validation then takes a fraction of a
second.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.io import Source, connect, read_inputs
from features.validation import AS_OF_RULE, ValidationReport, validate_inputs

ACCOUNT_COLUMNS = ["account_id", "signup_at", "churned_at", "seats", "plan"]
EVENT_COLUMNS = ["account_id", "event", "occurred_at", "quantity"]
TIMESTAMPS = {"signup_at", "churned_at", "occurred_at"}
# Parquet types of columns whose values do not tell (all null, or no row at all)
DEFAULT_TYPES = {
    "account_id": pa.string(),
    "event": pa.string(),
    "plan": pa.string(),
    "seats": pa.int64(),
    "quantity": pa.float64(),
}


def _rows(columns: list[str], *rows: tuple) -> list[dict]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


# fmt: off
ACCOUNTS = _rows(
    ACCOUNT_COLUMNS,
    ("a1", "2025-01-01T00:00:00", None,                  1, "pro"),
    ("a2", "2025-01-15T00:00:00", "2025-06-01T00:00:00", 3, "basic"),
    ("a3", "2025-02-01T12:00:00", None,                  5, "pro"),
)
EVENTS = _rows(
    EVENT_COLUMNS,
    ("a1", "login",         "2025-01-02T09:00:00", 1.0),
    ("a1", "invoice_sent",  "2025-01-03T10:00:00", 2.0),
    ("a2", "login",         "2025-01-16T08:00:00", 1.0),
    ("a2", "invoice_sent",  "2025-02-01T08:00:00", None),
    ("a3", "login",         "2025-02-02T08:00:00", 1.0),
    ("a3", "report_viewed", "2025-03-01T08:00:00", 0.0),
)
# fmt: on
CONFIGURED = {
    "login": "milestones.activation.event",
    "invoice_sent": "milestones.utilization.event",
}
SCHEMA_RULES = {
    "accounts.columns.present",
    "accounts.columns.types",
    "events.columns.present",
    "events.columns.types",
}


# --------------------------------------------------------------------------- writing inputs


def _parquet_column(name: str, values: list[Any]) -> pa.Array:
    if name in TIMESTAMPS and all(v is None or isinstance(v, str) for v in values):
        parsed = [dt.datetime.fromisoformat(v) if v is not None else None for v in values]
        return pa.array(parsed, pa.timestamp("us"))
    array = pa.array(values)
    if array.type == pa.null() and name in DEFAULT_TYPES:
        return pa.array(values, DEFAULT_TYPES[name])
    return array


def write_parquet(rows: list[dict], columns: list[str], path: Path) -> Path:
    table = pa.table({c: _parquet_column(c, [r.get(c) for r in rows]) for c in columns})
    pq.write_table(table, path)
    return path


def write_csv(rows: list[dict], columns: list[str], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else str(r[c]) for c in columns])
    return path


def validate(
    tmp_path: Path,
    fmt: str,
    accounts: list[dict] = ACCOUNTS,
    events: list[dict] = EVENTS,
    *,
    account_columns: list[str] = ACCOUNT_COLUMNS,
    event_columns: list[str] = EVENT_COLUMNS,
    as_of: dt.datetime | None = None,
    configured: dict[str, str] | None = CONFIGURED,
) -> ValidationReport:
    write = write_parquet if fmt == "parquet" else write_csv
    a = write(accounts, account_columns, tmp_path / f"accounts.{fmt}")
    e = write(events, event_columns, tmp_path / f"events.{fmt}")
    con = connect()
    accounts_raw, events_raw = read_inputs(con, Source(str(a)), Source(str(e)))
    return validate_inputs(con, accounts_raw, events_raw, as_of=as_of, configured_events=configured)


def result(report: ValidationReport, rule: str):
    found = [r for r in report.results if r.rule == rule]
    assert found, f"rule {rule} not in the report: {[r.rule for r in report.results]}"
    return found[0]


def changed(rows: list[dict], index: int, **values: Any) -> list[dict]:
    out = [dict(r) for r in rows]
    out[index].update(values)
    return out


def added(rows: list[dict], **row: Any) -> list[dict]:
    return [dict(r) for r in rows] + [row]


@pytest.fixture(scope="module")
def clean_reports(tmp_path_factory) -> dict[str, ValidationReport]:
    """The clean input validated as Parquet and as CSV (pays GE's import once)."""
    return {
        fmt: validate(tmp_path_factory.mktemp(f"clean_{fmt}"), fmt) for fmt in ("parquet", "csv")
    }


# --------------------------------------------------------------------------- clean inputs


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_clean_input_passes_every_rule(clean_reports, fmt):
    report = clean_reports[fmt]
    assert report.ok, report.format()
    assert report.engine == "duckdb"
    assert report.row_counts == {"accounts": 3, "events": 6}
    assert report.as_of == dt.datetime(2025, 3, 1, 8, 0)
    rules = {r.rule for r in report.results}
    assert "events.account_id.known" in rules and "events.event.configured" in rules
    # with as_of taken from the events, no event can be after it: the rule is not checked
    assert "events.occurred_at.not_after_as_of" not in rules
    assert result(report, AS_OF_RULE).ok  # ... and it could be derived
    assert "Input validation passed" in report.format()


def test_report_is_json_serialisable(clean_reports):
    data = json.loads(json.dumps(clean_reports["csv"].to_dict()))
    assert data["ok"] is True
    assert data["as_of"] == "2025-03-01T08:00:00"
    assert data["failures"] == []
    assert {r["rule"] for r in data["results"]} >= SCHEMA_RULES


def test_csv_with_iso_offsets_and_naive_timestamps_passes(tmp_path):
    accounts = changed(ACCOUNTS, 0, signup_at="2025-01-01T00:00:00Z")
    accounts = changed(accounts, 1, signup_at="2025-01-15 01:00:00+01:00", churned_at="2025-06-01")
    events = changed(EVENTS, 0, occurred_at="2025-01-02T09:00:00-05:00")
    events = changed(events, 2, occurred_at="2025-01-15T00:30:00+00:00")  # 30 min after signup
    report = validate(tmp_path, "csv", accounts, events)
    assert report.ok, report.format()


def test_offset_is_applied_before_comparing_with_signup(tmp_path):
    # 12:30 at +01:00 is 11:30 UTC, half an hour before a3 signs up at 12:00 UTC
    events = added(
        EVENTS, account_id="a3", event="login", occurred_at="2025-02-01T12:30:00+01:00", quantity=1
    )
    report = validate(tmp_path, "csv", ACCOUNTS, events)
    broken = result(report, "events.occurred_at.not_before_signup")
    assert broken.unexpected_count == 1
    assert broken.examples[0]["occurred_at"] == "2025-02-01T12:30:00+01:00"
    assert broken.examples[0]["signup_at"] == "2025-02-01T12:00:00"


# --------------------------------------------------------------------------- schema (fail fast)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_missing_columns_fail_fast(tmp_path, fmt):
    report = validate(
        tmp_path,
        fmt,
        account_columns=["account_id", "signup_at", "churned_at", "plan"],
        event_columns=["account_id", "event", "quantity"],
    )
    assert {r.rule for r in report.results} == SCHEMA_RULES  # nothing else could be checked
    assert [r.rule for r in report.failures] == [
        "accounts.columns.present",
        "events.columns.present",
    ]
    assert result(report, "accounts.columns.present").examples == [{"missing_column": "seats"}]
    events = result(report, "events.columns.present")
    assert events.unexpected_count == 1
    assert events.examples == [{"missing_column": "occurred_at"}]
    assert "[accounts.columns.present]" in report.format()


def test_column_of_unusable_type_fails_fast(tmp_path):
    accounts = [dict(r, seats=True) for r in ACCOUNTS]
    report = validate(tmp_path, "parquet", accounts)
    assert {r.rule for r in report.results} == SCHEMA_RULES
    broken = result(report, "accounts.columns.types")
    assert broken.unexpected_count == 1
    assert broken.examples[0]["column"] == "seats"
    assert broken.examples[0]["type"] == "boolean"


# --------------------------------------------------------------------------- one test per rule


@dataclass(frozen=True)
class Case:
    """A broken input: which rule it breaks, how many rows, and a value the examples show."""

    rule: str
    count: int
    offending: Any  # a value found in the examples; a dict gives one per format
    accounts: list[dict] = field(default_factory=lambda: ACCOUNTS)
    events: list[dict] = field(default_factory=lambda: EVENTS)
    formats: tuple[str, ...] = ("parquet", "csv")
    as_of: dt.datetime | None = None
    configured: dict[str, str] | None = field(default_factory=lambda: CONFIGURED)
    also: tuple[str, ...] = ()  # other rules the input breaks as a consequence


P, C, BOTH = ("parquet",), ("csv",), ("parquet", "csv")
CASES = {
    "accounts_empty": Case(
        "accounts.rows.not_empty", 1, 0, accounts=[], formats=C, also=("events.account_id.known",)
    ),
    "events_empty": Case(  # and with no event, as_of cannot be derived
        "events.rows.not_empty", 1, 0, events=[], configured=None, formats=P, also=(AS_OF_RULE,)
    ),
    "account_id_null": Case(
        "accounts.account_id.not_null",
        1,
        7,
        accounts=added(ACCOUNTS, account_id=None, signup_at="2025-01-01T00:00:00", seats=7),
        formats=P,
    ),
    "account_id_blank": Case(
        "accounts.account_id.not_null",
        1,
        "   ",
        accounts=added(ACCOUNTS, account_id="   ", signup_at="2025-01-01T00:00:00", seats=7),
        formats=C,
    ),
    "account_id_duplicated": Case(
        "accounts.account_id.unique",
        2,
        "a2",
        accounts=added(ACCOUNTS, account_id="a2", signup_at="2025-01-20T00:00:00", seats=1),
        formats=P,
    ),
    "signup_null": Case(
        "accounts.signup_at.not_null",
        1,
        "a2",
        accounts=changed(ACCOUNTS, 1, signup_at=None),
        formats=C,
    ),
    "signup_unparseable": Case(
        "accounts.signup_at.parseable",
        1,
        "15/01/2025",
        accounts=changed(ACCOUNTS, 1, signup_at="15/01/2025"),
        formats=C,
    ),
    "churned_unparseable": Case(
        "accounts.churned_at.parseable",
        1,
        "soon",
        accounts=changed(ACCOUNTS, 0, churned_at="soon"),
        formats=C,
    ),
    "seats_null": Case(
        "accounts.seats.not_null", 1, "a3", accounts=changed(ACCOUNTS, 2, seats=None), formats=P
    ),
    "seats_fraction": Case(  # a float column in Parquet, a string that DuckDB would round in CSV
        "accounts.seats.integer",
        1,
        {"parquet": 2.5, "csv": "2.5"},
        accounts=changed(ACCOUNTS, 1, seats=2.5),
        formats=BOTH,
    ),
    "seats_text": Case(
        "accounts.seats.integer",
        1,
        "three",
        accounts=changed(ACCOUNTS, 1, seats="three"),
        formats=C,
    ),
    "seats_zero": Case(
        "accounts.seats.at_least_one", 1, 0, accounts=changed(ACCOUNTS, 0, seats=0), formats=P
    ),
    "signup_after_latest_event": Case(  # as_of: None, so the latest event time
        "accounts.signup_at.not_after_as_of",
        1,
        "a4",
        accounts=added(ACCOUNTS, account_id="a4", signup_at="2025-04-01T00:00:00", seats=1),
        formats=C,
    ),
    "signup_after_as_of": Case(
        "accounts.signup_at.not_after_as_of",
        1,
        "a3",
        as_of=dt.datetime(2025, 1, 31),
        formats=P,
        also=("events.occurred_at.not_after_as_of",),
    ),
    "churned_before_signup": Case(
        "accounts.churned_at.not_before_signup",
        1,
        "2025-01-10T00:00:00",
        accounts=changed(ACCOUNTS, 1, churned_at="2025-01-10T00:00:00"),
        formats=P,
    ),
    "event_account_null": Case(
        "events.account_id.not_null",
        1,
        "export_csv",
        events=added(
            EVENTS, account_id=None, event="export_csv", occurred_at="2025-02-10T00:00:00"
        ),
        formats=C,
    ),
    "event_name_empty": Case(  # "" in Parquet, an empty field (null) in CSV
        "events.event.not_null",
        1,
        "2025-02-10T00:00:00",
        events=added(EVENTS, account_id="a1", event="", occurred_at="2025-02-10T00:00:00"),
        formats=BOTH,
    ),
    "occurred_null": Case(
        "events.occurred_at.not_null",
        1,
        "export_csv",
        events=added(EVENTS, account_id="a1", event="export_csv", occurred_at=None),
        formats=P,
    ),
    "occurred_unparseable": Case(
        "events.occurred_at.parseable",
        1,
        "last tuesday",
        events=changed(EVENTS, 4, occurred_at="last tuesday"),
        formats=C,
    ),
    "quantity_nan": Case(  # the NaN itself shows as null (test_nan_example_is_json_null)
        "events.quantity.numeric",
        1,
        "invoice_sent",
        events=changed(EVENTS, 1, quantity=float("nan")),
        formats=P,
    ),
    "quantity_text": Case(
        "events.quantity.numeric", 1, "two", events=changed(EVENTS, 1, quantity="two"), formats=C
    ),
    "quantity_negative": Case(
        "events.quantity.non_negative",
        1,
        "-3.0",
        events=changed(EVENTS, 1, quantity=-3.0),
        formats=C,
    ),
    "account_unknown": Case(
        "events.account_id.known",
        2,
        "zz9",
        events=added(
            added(EVENTS, account_id="zz9", event="login", occurred_at="2025-02-10T00:00:00"),
            account_id="zz9",
            event="export_csv",
            occurred_at="2025-02-11T00:00:00",
        ),
        formats=C,
    ),
    "event_before_signup": Case(  # the same day as a3's signup at 12:00, one minute before
        "events.occurred_at.not_before_signup",
        1,
        "2025-02-01T11:59:00",
        events=added(EVENTS, account_id="a3", event="login", occurred_at="2025-02-01T11:59:00"),
        formats=C,
    ),
    "event_after_as_of": Case(
        "events.occurred_at.not_after_as_of",
        1,
        "report_viewed",
        as_of=dt.datetime(2025, 2, 28),
        formats=P,
    ),
    "configured_event_missing": Case(
        "events.event.configured",
        1,
        "milestones.maturity.categories.reporting",
        configured={**CONFIGURED, "export_csv": "milestones.maturity.categories.reporting"},
        formats=P,
    ),
}

PARAMS = [
    pytest.param(name, fmt, id=f"{name}-{fmt}")
    for name, case in CASES.items()
    for fmt in case.formats
]


@pytest.mark.parametrize(("name", "fmt"), PARAMS)
def test_each_rule_reports_its_broken_rows(tmp_path, name, fmt):
    case = CASES[name]
    report = validate(
        tmp_path, fmt, case.accounts, case.events, as_of=case.as_of, configured=case.configured
    )
    broken = result(report, case.rule)
    assert not report.ok
    assert broken.unexpected_count == case.count, report.format()
    offending = case.offending[fmt] if isinstance(case.offending, dict) else case.offending
    assert any(offending in row.values() for row in broken.examples), broken.examples
    assert len(broken.examples) == min(case.count, 5)
    # each broken input breaks the rule it is written for, and no other by accident
    assert {r.rule for r in report.failures} == {case.rule, *case.also}, report.format()


def test_nan_example_is_json_null(tmp_path):
    report = validate(tmp_path, "parquet", events=changed(EVENTS, 1, quantity=float("nan")))
    assert result(report, "events.quantity.numeric").examples == [
        {
            "account_id": "a1",
            "event": "invoice_sent",
            "occurred_at": "2025-01-03T10:00:00",
            "quantity": None,
        }
    ]
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # strict JSON: no NaN
    assert data["failures"] == ["events.quantity.numeric"]


# --------------------------------------------------------------------------- as_of

# A DuckDB database whose events carry time zones: the latest event in UTC (07:00) is not the
# latest wall-clock time (08:00 at +02:00, 06:00 UTC).
LATEST_UTC = dt.datetime(2025, 3, 1, 7, 0)


def duckdb_inputs(tmp_path: Path):
    """A connection and the two raw tables of a tiny hand-made DuckDB database."""
    import duckdb

    db = tmp_path / "inputs.duckdb"
    with duckdb.connect(str(db)) as c:
        c.execute("SET TimeZone = 'UTC'")
        c.execute(
            "CREATE TABLE accounts (account_id VARCHAR, signup_at TIMESTAMP, "
            "churned_at TIMESTAMP, seats INTEGER, plan VARCHAR)"
        )
        c.execute("INSERT INTO accounts VALUES ('a1', '2025-01-01 00:00:00', NULL, 2, 'pro')")
        c.execute(
            "CREATE TABLE events (account_id VARCHAR, event VARCHAR, occurred_at TIMESTAMPTZ)"
        )
        c.execute(
            "INSERT INTO events VALUES ('a1', 'login', '2025-01-02 09:00:00+00'), "
            "('a1', 'login', '2025-03-01 08:00:00+02'), ('a1', 'send', '2025-03-01 07:00:00+00')"
        )
    con = connect()
    accounts, events = read_inputs(
        con, Source("accounts", database=str(db)), Source("events", database=str(db))
    )
    return con, accounts, events


def latest_time_queries(monkeypatch, con) -> list[str]:
    """The SQL of every max(occurred_at) query run on ``con`` from now on (filled as they run)."""
    queries = []
    execute = con.execute

    def counting(expr, *args, **kwargs):
        sql = str(con.compile(expr))
        if "MAX(" in sql.upper() and "occurred_at" in sql:
            queries.append(sql)
        return execute(expr, *args, **kwargs)

    monkeypatch.setattr(con, "execute", counting)
    return queries


def test_as_of_defaults_to_the_latest_event_in_naive_utc_queried_once(tmp_path, monkeypatch):
    con, accounts, events = duckdb_inputs(tmp_path)
    queries = latest_time_queries(monkeypatch, con)
    report = validate_inputs(con, accounts, events, as_of=None, configured_events={"send": "k"})
    assert report.ok, report.format()
    assert report.as_of == LATEST_UTC
    assert report.as_of.tzinfo is None
    assert report.to_dict()["as_of"] == "2025-03-01T07:00:00"
    assert len(queries) == 1, queries


def test_configured_as_of_is_converted_to_naive_utc_and_not_queried(tmp_path, monkeypatch):
    con, accounts, events = duckdb_inputs(tmp_path)
    queries = latest_time_queries(monkeypatch, con)
    as_of = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    report = validate_inputs(con, accounts, events, as_of=as_of)
    assert report.ok, report.format()  # the 07:00 UTC event is not after 09:00 at +02:00
    assert report.as_of == LATEST_UTC
    assert report.as_of.tzinfo is None
    assert queries == []
    rules = {r.rule for r in report.results}
    assert "events.occurred_at.not_after_as_of" in rules and AS_OF_RULE not in rules


def test_as_of_off_duckdb_is_queried_once_too(tmp_path, monkeypatch):
    class OtherEngine:
        name = "pyspark"

    con, accounts, events = duckdb_inputs(tmp_path)
    queries = latest_time_queries(monkeypatch, con)  # the tables' own backend runs the query
    report = validate_inputs(OtherEngine(), accounts, events, as_of=None)
    assert report.engine == "spark"
    assert report.ok, report.format()
    assert report.as_of == LATEST_UTC
    assert len(queries) == 1, queries


def test_as_of_that_cannot_be_derived_is_a_broken_rule(tmp_path):
    events = [dict(r, occurred_at=None) for r in EVENTS]  # no event has a time
    report = validate(tmp_path, "parquet", events=events)
    assert report.as_of is None
    assert {r.rule for r in report.failures} == {"events.occurred_at.not_null", AS_OF_RULE}
    broken = result(report, AS_OF_RULE)
    assert broken.unexpected_count == 1
    assert broken.examples == [{"events": 6, "readable": 0}]
    assert f"[{AS_OF_RULE}]" in report.format() and "data.as_of" in report.format()
    # with as_of configured there is nothing to derive
    configured = validate(tmp_path, "parquet", events=events, as_of=dt.datetime(2025, 3, 1))
    assert configured.as_of == dt.datetime(2025, 3, 1)
    assert AS_OF_RULE not in {r.rule for r in configured.results}


def test_schema_failure_still_reports_the_configured_as_of(tmp_path):
    as_of = dt.datetime(2025, 3, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    report = validate(tmp_path, "csv", event_columns=["account_id", "event"], as_of=as_of)
    assert {r.rule for r in report.results} == SCHEMA_RULES
    assert report.as_of == dt.datetime(2025, 3, 1, 0, 0)


# --------------------------------------------------------------------------- the report


def test_format_names_each_broken_rule_with_its_count_and_examples(tmp_path):
    accounts = changed(ACCOUNTS, 1, seats=0)
    events = [dict(r) for r in EVENTS] + [
        {
            "account_id": f"ghost{i}",
            "event": "login",
            "occurred_at": "2025-02-10T00:00:00",
            "quantity": 1.0,
        }
        for i in range(7)
    ]
    report = validate(tmp_path, "parquet", accounts, events)
    text = report.format()
    assert "2 of" in text and "rules broken" in text
    assert "[events.account_id.known] every event's account_id exists in accounts" in text
    assert "7 rows break this rule" in text
    assert "[accounts.seats.at_least_one]" in text and "1 row breaks this rule" in text
    assert text.count("account_id='ghost") == 5  # at most five examples per rule
    assert "seats=0" in text
    assert [r.rule for r in report.failures] == [
        "accounts.seats.at_least_one",
        "events.account_id.known",
    ]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["failures"] == ["accounts.seats.at_least_one", "events.account_id.known"]


def test_rules_run_directly_off_duckdb_give_the_same_result(tmp_path):
    """On an engine other than DuckDB (Spark) the same Ibis rules run without GE."""

    class OtherEngine:
        name = "pyspark"  # what validate_inputs looks at; the tables carry their own backend

    accounts = changed(ACCOUNTS, 1, seats="2.5")
    events = added(EVENTS, account_id="zz9", event="login", occurred_at="2025-02-10T00:00:00")
    write_csv(accounts, ACCOUNT_COLUMNS, tmp_path / "accounts.csv")
    write_csv(events, EVENT_COLUMNS, tmp_path / "events.csv")
    con = connect()
    a, e = read_inputs(
        con, Source(str(tmp_path / "accounts.csv")), Source(str(tmp_path / "events.csv"))
    )
    configured = {**CONFIGURED, "export_csv": "milestones.maturity.categories.reporting"}
    with_ge = validate_inputs(con, a, e, as_of=None, configured_events=configured)
    direct = validate_inputs(OtherEngine(), a, e, as_of=None, configured_events=configured)
    assert direct.engine == "spark"
    summary = lambda rep: {r.rule: (r.unexpected_count, r.examples) for r in rep.results}  # noqa: E731
    assert summary(direct) == summary(with_ge)
    assert [r.rule for r in direct.failures] == [
        "accounts.seats.integer",
        "events.account_id.known",
        "events.event.configured",
    ]


def test_validation_leaves_the_connection_as_it_found_it(tmp_path):
    write_parquet(ACCOUNTS, ACCOUNT_COLUMNS, tmp_path / "accounts.parquet")
    write_parquet(EVENTS, EVENT_COLUMNS, tmp_path / "events.parquet")
    con = connect()
    a, e = read_inputs(
        con, Source(str(tmp_path / "accounts.parquet")), Source(str(tmp_path / "events.parquet"))
    )
    objects = (
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() "
        "WHERE NOT internal ORDER BY 1"
    )
    before = con.raw_sql(objects).fetchall()
    progress_bar = "SELECT current_setting('enable_progress_bar')"
    con.raw_sql("SET enable_progress_bar = true")
    report = validate_inputs(con, a, e, as_of=None, configured_events=CONFIGURED)
    assert report.ok
    assert e.count().execute() == 6  # no result is left half-read on the backend's connection
    assert con.raw_sql(objects).fetchall() == before  # its temporary views and table are gone
    assert con.raw_sql(progress_bar).fetchall() == [(True,)]  # turned off only while it ran
    assert con.raw_sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]


# --------------------------------------------------------------------------- the clock


@pytest.mark.parametrize("when", ["2200-01-01T00:00:00", "9999-12-31T00:00:00"])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_event_beyond_the_clock_breaks_a_rule_when_as_of_is_derived(tmp_path, fmt, when):
    """Without the rule one event dated 2200 moved the run's as_of to 2200 and every check
    against as_of passed."""
    events = added(EVENTS, account_id="a2", event="login", occurred_at=when, quantity=1.0)
    report = validate(tmp_path, fmt, events=events)
    broken = result(report, "events.occurred_at.not_in_future")
    assert broken.unexpected_count == 1
    assert broken.examples[0]["account_id"] == "a2"
    assert {r.rule for r in report.failures} == {"events.occurred_at.not_in_future"}
    assert "[events.occurred_at.not_in_future]" in report.format()
    # a configured as_of is checked against the events instead
    configured = validate(tmp_path, fmt, events=events, as_of=dt.datetime(2025, 6, 1))
    assert "events.occurred_at.not_in_future" not in {r.rule for r in configured.results}
    assert {r.rule for r in configured.failures} == {"events.occurred_at.not_after_as_of"}
