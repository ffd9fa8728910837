"""Validation of the input data contract (``accounts`` and ``events``) in the engine.

Each rule of the contract is written once, as an Ibis expression of the rows that break it
(its "unexpected rows"). On DuckDB the rules are checked by Great Expectations on the very
DuckDB connection the inputs were read with (:mod:`features.expectations`), so the files are
scanned by DuckDB and never copied into pandas. On any other engine (Spark) the same
expressions run directly: a count and the first few rows of each.

Validation also settles the run's ``as_of`` (:attr:`ValidationReport.as_of`): the configured
one as naive UTC, else the latest readable event time, queried once here; the rest of the
run takes it from the report.

Timestamps are parsed with :func:`features.io.as_utc_timestamp`, so that what validation calls
parseable is exactly what the pipeline can read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.datatypes as idt
from ibis.expr.types import BooleanValue, Table, Value

from features.expectations import quiet, run_expectations, temporary_views
from features.io import (
    REQUIRED_ACCOUNT_COLUMNS,
    REQUIRED_EVENT_COLUMNS,
    as_utc_timestamp,
    latest_event_time,
)
from features.tables import young_gc
from features.values import engine_of, jsonable, naive_utc

MAX_EXAMPLES = 5
AS_OF_RULE = "events.occurred_at.as_of_derivable"
CLOCK_SLACK = dt.timedelta(days=1)


# What each column of the contract may hold in a typed source (a Parquet file, a DuckDB table);
# CSV columns are strings and are parsed by the rules. A column of the "null" type is a column
# whose values are all missing (for example `churned_at` while no account has churned).
_ACCEPTED_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "accounts": {
        "account_id": ("string", "integer"),
        "signup_at": ("timestamp", "date", "string"),
        "churned_at": ("timestamp", "date", "string", "null"),
        "seats": ("integer", "floating", "decimal", "string"),
    },
    "events": {
        "account_id": ("string", "integer", "null"),
        "event": ("string", "integer", "null"),
        "occurred_at": ("timestamp", "date", "string", "null"),
        "quantity": ("integer", "floating", "decimal", "string", "null"),
    },
}


@dataclass
class RuleResult:
    """The outcome of one rule: how many rows break it, and a few of them.

    Attributes
    ----------
    rule : str
        Stable identifier, ``<table>.<column>.<check>`` (for example
        ``events.account_id.known``).
    table : str
        ``accounts`` or ``events``.
    description : str
        The rule in plain words.
    unexpected_count : int
        Number of rows (or, for table-level rules, items) that break the rule.
    examples : list of dict
        Up to five offending rows, with their identifying columns and the offending value.
    """

    rule: str
    table: str
    description: str
    unexpected_count: int
    examples: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.unexpected_count == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "table": self.table,
            "description": self.description,
            "ok": self.ok,
            "unexpected_count": int(self.unexpected_count),
            "examples": [dict(row) for row in self.examples],
        }


@dataclass
class ValidationReport:
    """Every rule checked on the inputs, with the table sizes.

    Attributes
    ----------
    results : list of RuleResult
        One per rule, in a fixed order.
    row_counts : dict
        ``{"accounts": n, "events": n}``; empty when required columns are missing.
    engine : str
        ``"duckdb"`` (rules checked by Great Expectations) or ``"spark"`` (rules run as Ibis
        expressions).
    as_of : datetime or None
        The run's scoring date, naive UTC, that the rules were checked against: the
        configured one, else the latest readable event time. None only when neither exists
        (the rule ``events.occurred_at.as_of_derivable`` then fails) or, with no configured
        one, when a required column is missing.
    """

    results: list[RuleResult]
    row_counts: dict
    engine: str = "duckdb"
    as_of: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "ok": self.ok,
            "engine": self.engine,
            "as_of": self.as_of.isoformat() if self.as_of is not None else None,
            "row_counts": {k: int(v) for k, v in self.row_counts.items()},
            "failures": [r.rule for r in self.failures],
            "results": [r.to_dict() for r in self.results],
        }

    def format(self) -> str:
        """Human-readable text: one block per broken rule, with up to five example rows."""
        sizes = ", ".join(f"{k}: {v:,} rows" for k, v in self.row_counts.items())
        if self.ok:
            return f"Input validation passed: {len(self.results)} rules checked ({sizes})."
        failures = self.failures
        lines = [
            f"Input validation failed: {len(failures)} of {len(self.results)} rules broken"
            + (f" ({sizes})." if sizes else ".")
        ]
        for r in failures:
            unit = "row breaks" if r.unexpected_count == 1 else "rows break"
            lines.append("")
            lines.append(f"[{r.rule}] {r.description}")
            lines.append(f"  {r.unexpected_count:,} {unit} this rule; for example:")
            for row in r.examples[:MAX_EXAMPLES]:
                lines.append("    " + ", ".join(f"{k}={v!r}" for k, v in row.items()))
        return "\n".join(lines)


@dataclass(frozen=True)
class _Rule:
    """One rule: the Ibis expression of the rows that break it."""

    rule: str
    table: str
    description: str
    unexpected: Table


def validate_inputs(
    con,
    accounts_raw: Table,
    events_raw: Table,
    *,
    as_of: dt.datetime | None,
    configured_events: dict[str, str] | None = None,
    churn_column: bool = True,
) -> ValidationReport:
    """Check both raw input tables against the data contract, and settle the run's as_of.

    Parameters
    ----------
    con : ibis backend
        The backend from :func:`features.io.connect` the two tables were read with.
    accounts_raw, events_raw : ibis.Table
        The raw tables from :func:`features.io.read_inputs` (CSV columns are all strings).
    as_of : datetime or None
        The configured scoring date (an aware one is converted to naive UTC). None: the latest
        readable event time, in which case no event can be after it and that rule is not
        checked, and the rule ``events.occurred_at.as_of_derivable`` fails when no event has
        a readable time.
    configured_events : dict, optional
        Event name -> key path of the configuration that names it; every one must occur.
    churn_column : bool
        Whether churn comes from the accounts' ``churned_at`` (``retention.churn: column``).
        False (``inactivity``: churn is derived from the events): the column is not required,
        and one that is present is ignored (neither required nor checked).

    Returns
    -------
    ValidationReport
        Its ``as_of`` is the run's scoring date (naive UTC; None only when the report fails).
        When a required column is missing or has an unusable type, only those rules are
        reported (nothing else can be checked).
    """
    engine = engine_of(con)
    configured_as_of = naive_utc(as_of)
    required = REQUIRED_ACCOUNT_COLUMNS
    if not churn_column:
        required = tuple(c for c in required if c != "churned_at")
        if "churned_at" in accounts_raw.columns:
            accounts_raw = accounts_raw.drop("churned_at")
    schema_results = _schema_results(accounts_raw, events_raw, required)
    if any(not r.ok for r in schema_results):
        return ValidationReport(schema_results, {}, engine=engine, as_of=configured_as_of)

    explicit = configured_as_of is not None
    with quiet(con) if engine == "duckdb" else contextlib.nullcontext():
        row_counts = _row_counts(accounts_raw, events_raw)
        as_of, as_of_results = _resolve_as_of(events_raw, configured_as_of, row_counts)
        if engine == "duckdb":
            results = _check_with_great_expectations(
                con, accounts_raw, events_raw, as_of, explicit, configured_events
            )
        else:
            configured = _configured_table(configured_events)
            rules = _rules(accounts_raw, events_raw, as_of, explicit, configured)
            results = [_run_directly(rule) for rule in rules]
    return ValidationReport(
        schema_results + as_of_results + results, row_counts, engine=engine, as_of=as_of
    )


def _check_with_great_expectations(
    con,
    accounts_raw: Table,
    events_raw: Table,
    as_of: dt.datetime | None,
    explicit_as_of: bool,
    configured_events: dict[str, str] | None,
) -> list[RuleResult]:
    """The row-level rules, checked by Great Expectations on the inputs' DuckDB connection.

    Each input gets a temporary view (a GE table asset), and the configured events a temporary
    table; the rules read these, so that the SQL GE runs names them.
    """
    inputs = {"accounts": accounts_raw, "events": events_raw}
    text_tables = {}
    if configured_events:
        text_tables["configured"] = {
            "event": list(configured_events),
            "config_key": list(configured_events.values()),
        }
    with temporary_views(con, inputs, text_tables) as views:
        rules = _rules(
            views["accounts"],
            views["events"],
            as_of,
            explicit_as_of,
            views.get("configured"),
        )
        names = {table: views[table].get_name() for table in inputs}
        outcomes = run_expectations(con, names, rules)
    return [_result(rule, *outcomes[rule.rule]) for rule in rules]


# --------------------------------------------------------------------------- the schema


def _type_family(dtype: idt.DataType) -> str:
    for family in ("string", "integer", "floating", "decimal", "timestamp", "date", "null"):
        if getattr(dtype, f"is_{family}")():
            return family
    return str(dtype)


def _schema_results(
    accounts: Table, events: Table, required_accounts: tuple[str, ...] = REQUIRED_ACCOUNT_COLUMNS
) -> list[RuleResult]:
    """The fail-fast rules: required columns present, with types the rules can read."""
    results = []
    for table, raw, required in (
        ("accounts", accounts, required_accounts),
        ("events", events, REQUIRED_EVENT_COLUMNS),
    ):
        missing = [c for c in required if c not in raw.columns]
        results.append(
            RuleResult(
                rule=f"{table}.columns.present",
                table=table,
                description=f"{table} has the columns {', '.join(required)}",
                unexpected_count=len(missing),
                examples=[{"missing_column": c} for c in missing][:MAX_EXAMPLES],
            )
        )
        wrong = []
        for column, accepted in _ACCEPTED_TYPES[table].items():
            if column in raw.columns:
                family = _type_family(raw[column].type())
                if family not in accepted:
                    wrong.append(
                        {
                            "column": column,
                            "type": str(raw[column].type()),
                            "expected": " or ".join(accepted),
                        }
                    )
                    if "timestamp" in accepted and family in ("integer", "floating", "decimal"):
                        wrong[-1]["hint"] = (
                            f"epoch numbers? set data.timestamps.{column}: seconds or milliseconds"
                        )
        results.append(
            RuleResult(
                rule=f"{table}.columns.types",
                table=table,
                description=f"every column of {table} has a type the contract allows",
                unexpected_count=len(wrong),
                examples=wrong[:MAX_EXAMPLES],
            )
        )
    return results


def _row_counts(accounts: Table, events: Table) -> dict[str, int]:
    return {"accounts": int(accounts.count().execute()), "events": int(events.count().execute())}


def _resolve_as_of(
    events: Table, configured: dt.datetime | None, row_counts: dict[str, int]
) -> tuple[dt.datetime | None, list[RuleResult]]:
    """The run's as_of: the configured one, else the latest readable event time (one query).

    With no configured as_of, the result also holds the rule that it could be derived.
    """
    if configured is not None:
        return configured, []
    latest = latest_event_time(events)
    broken = [] if latest is not None else [{"events": row_counts["events"], "readable": 0}]
    rule = RuleResult(
        rule=AS_OF_RULE,
        table="events",
        description=(
            "as_of is not configured, so it is the latest event time: at least one event "
            "has a readable occurred_at (or configure data.as_of)"
        ),
        unexpected_count=len(broken),
        examples=broken,
    )
    return latest, [rule]


# --------------------------------------------------------------------------- the rules


def _missing(col: Value) -> BooleanValue:
    """Null, or a blank string."""
    if col.type().is_string():
        # a regular expression, as TRIM on every value costs several times more on DuckDB
        return col.isnull() | col.re_search(r"^\s*$")
    return col.isnull()


def _unparseable_timestamp(col: Value) -> BooleanValue:
    """Present, but not a timestamp the pipeline can read."""
    dtype = col.type()
    if dtype.is_timestamp() or dtype.is_date():
        return ibis.literal(False)
    return ~_missing(col) & as_utc_timestamp(col).isnull()


def _as_float(col: Value) -> Value:
    dtype = col.type()
    if dtype.is_string():
        return col.try_cast("float64")
    if dtype.is_null():
        return ibis.null("float64")
    return col.cast("float64")


def _not_a_number(col: Value) -> BooleanValue:
    """Present, but not a finite number."""
    dtype = col.type()
    if dtype.is_integer() or dtype.is_decimal():
        return ibis.literal(False)
    x = _as_float(col)
    return ~_missing(col) & (x.isnull() | x.isnan() | x.isinf())


def _not_an_integer(col: Value) -> BooleanValue:
    """Present, but not a whole number the pipeline reads as one."""
    dtype = col.type()
    if dtype.is_integer():
        return ibis.literal(False)
    x = _as_float(col)
    if dtype.is_string():
        # the pipeline reads a string with TRY_CAST to an integer, which rounds "2.5" to 3:
        # a value is whole only when it reads the same as an integer and as a float
        as_int = col.try_cast("int64")
        return ~_missing(col) & (as_int.isnull() | x.isnull() | (x != as_int.cast("float64")))
    return ~_missing(col) & (x.isnan() | x.isinf() | (x != x.floor()))


def _empty(t: Table) -> Table:
    """One row (``rows = 0``) when the table is empty, none otherwise."""
    # the select keeps Ibis from filtering on a second scalar COUNT(*) subquery
    counted = t.aggregate(rows=t.count()).select("rows")
    return counted.filter(counted.rows == 0)


def clock_limit() -> dt.datetime:
    """The latest believable time of an input, naive UTC: this machine's clock plus a day."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) + CLOCK_SLACK


def _ts_literal(value: dt.datetime) -> Value:
    return ibis.literal(value, type=idt.Timestamp())


def _configured_table(configured_events: dict[str, str] | None) -> Table | None:
    if not configured_events:
        return None
    return ibis.memtable(
        {"event": list(configured_events), "config_key": list(configured_events.values())},
        schema={"event": "string", "config_key": "string"},
    )


def _rules(
    accounts: Table,
    events: Table,
    as_of: dt.datetime | None,
    explicit_as_of: bool,
    configured: Table | None,
) -> list[_Rule]:
    """Every row-level rule of the contract, as expressions of the rows that break it."""
    a, e = accounts, events
    a_id = a.account_id.cast("string")
    signup = as_utc_timestamp(a.signup_at)
    has_churn = "churned_at" in a.columns  # absent with churn derived from inactivity
    occurred = as_utc_timestamp(e.occurred_at)

    def ev_rows(t: Table, **extra: Value) -> Table:
        return t.select(
            account_id=t.account_id.cast("string"),
            event=t.event,
            occurred_at=t.occurred_at,
            **extra,
        )

    rules: list[_Rule] = []

    def add(rule: str, description: str, unexpected: Table) -> None:
        rules.append(_Rule(rule, rule.split(".", 1)[0], description, unexpected))

    # -- accounts
    add("accounts.rows.not_empty", "accounts has at least one row", _empty(a))
    add(
        "accounts.account_id.not_null",
        "every account has an account_id",
        a.filter(_missing(a.account_id)).select(
            account_id=a_id, signup_at=a.signup_at, seats=a.seats
        ),
    )
    with_id = a.filter(~_missing(a.account_id)).select(account_id=a_id, signup_at=a.signup_at)
    counted = with_id.mutate(
        occurrences=with_id.account_id.count().over(group_by=with_id.account_id)
    )
    add(
        "accounts.account_id.unique",
        "no account_id appears on more than one row of accounts",
        counted.filter(counted.occurrences > 1),
    )
    add(
        "accounts.signup_at.not_null",
        "every account has a signup_at",
        a.filter(_missing(a.signup_at)).select(account_id=a_id, signup_at=a.signup_at),
    )
    add(
        "accounts.signup_at.parseable",
        "every signup_at is an ISO 8601 timestamp (naive = UTC, or with an offset)",
        a.filter(_unparseable_timestamp(a.signup_at)).select(
            account_id=a_id, signup_at=a.signup_at
        ),
    )
    if has_churn:
        add(
            "accounts.churned_at.parseable",
            "every churned_at, when present, is an ISO 8601 timestamp (naive = UTC, or with an "
            "offset)",
            a.filter(_unparseable_timestamp(a.churned_at)).select(
                account_id=a_id, churned_at=a.churned_at
            ),
        )
    add(
        "accounts.seats.not_null",
        "every account has a number of seats",
        a.filter(_missing(a.seats)).select(account_id=a_id, seats=a.seats),
    )
    add(
        "accounts.seats.integer",
        "every seats value is a whole number",
        a.filter(_not_an_integer(a.seats)).select(account_id=a_id, seats=a.seats),
    )
    add(
        "accounts.seats.at_least_one",
        "every account has at least 1 seat",
        a.filter(_as_float(a.seats) < 1).select(account_id=a_id, seats=a.seats),
    )
    if as_of is not None:
        add(
            "accounts.signup_at.not_after_as_of",
            f"no account signs up after as_of ({as_of.isoformat()})",
            a.filter(signup > _ts_literal(as_of)).select(account_id=a_id, signup_at=a.signup_at),
        )
    if has_churn:
        add(
            "accounts.churned_at.not_before_signup",
            "every churned_at is at or after the account's signup_at",
            a.filter(as_utc_timestamp(a.churned_at) < signup).select(
                account_id=a_id, signup_at=a.signup_at, churned_at=a.churned_at
            ),
        )

    # -- events
    add("events.rows.not_empty", "events has at least one row", _empty(e))
    add(
        "events.account_id.not_null",
        "every event has an account_id",
        ev_rows(e.filter(_missing(e.account_id))),
    )
    add(
        "events.event.not_null",
        "every event has a non-empty event name",
        ev_rows(e.filter(_missing(e.event))),
    )
    add(
        "events.occurred_at.not_null",
        "every event has an occurred_at",
        ev_rows(e.filter(_missing(e.occurred_at))),
    )
    add(
        "events.occurred_at.parseable",
        "every occurred_at is an ISO 8601 timestamp (naive = UTC, or with an offset)",
        ev_rows(e.filter(_unparseable_timestamp(e.occurred_at))),
    )
    if "quantity" in e.columns:
        add(
            "events.quantity.numeric",
            "every quantity, when present, is a finite number",
            ev_rows(e.filter(_not_a_number(e.quantity)), quantity=e.quantity),
        )
        add(
            "events.quantity.non_negative",
            "every quantity, when present, is >= 0",
            ev_rows(e.filter(_as_float(e.quantity) < 0), quantity=e.quantity),
        )
    known = a.filter(~_missing(a.account_id)).select(known_id=a_id).distinct()
    present = e.filter(~_missing(e.account_id))
    add(
        "events.account_id.known",
        "every event's account_id exists in accounts",
        ev_rows(present.anti_join(known, present.account_id.cast("string") == known.known_id)),
    )
    # one signup per account (the earliest, should account_id repeat) keeps one row per event
    signups = (
        a.filter(~_missing(a.account_id))
        .select(signup_id=a_id, signup=signup)
        .group_by("signup_id")
        .aggregate(signup_at=ibis._.signup.min())
    )
    timed = e.mutate(_occurred=occurred)
    joined = timed.inner_join(signups, timed.account_id.cast("string") == signups.signup_id)
    add(
        "events.occurred_at.not_before_signup",
        "no event occurs before its account's signup_at",
        ev_rows(joined.filter(joined._occurred < joined.signup_at), signup_at=joined.signup_at),
    )
    if not explicit_as_of:
        # the latest event becomes as_of: one event dated 2200 would move the run to 2200
        limit = clock_limit()
        add(
            "events.occurred_at.not_in_future",
            "as_of is not configured, so it is the latest event time: no event occurs later "
            f"than this machine's clock allows ({limit.isoformat(timespec='seconds')} UTC, "
            "now + 1 day; or configure data.as_of)",
            ev_rows(e.filter(occurred > _ts_literal(limit))),
        )
    if explicit_as_of and as_of is not None:
        add(
            "events.occurred_at.not_after_as_of",
            f"no event occurs after as_of ({as_of.isoformat()})",
            ev_rows(e.filter(occurred > _ts_literal(as_of))),
        )
    if configured is not None:
        seen = e.filter(~_missing(e.event)).select(seen_event=e.event.cast("string")).distinct()
        add(
            "events.event.configured",
            "every event the configuration names occurs in events",
            configured.anti_join(seen, configured.event == seen.seen_event),
        )
    return rules


# --------------------------------------------------------------------------- running them


def _examples(rows: list[dict]) -> list[dict]:
    return [{str(k): jsonable(v) for k, v in dict(row).items()} for row in rows[:MAX_EXAMPLES]]


def _result(rule: _Rule, count: int, rows: list[dict]) -> RuleResult:
    return RuleResult(rule.rule, rule.table, rule.description, count, _examples(rows))


def _run_directly(rule: _Rule) -> RuleResult:
    """Run one rule's expression on the engine: its count and its first few rows."""
    count = int(rule.unexpected.count().execute())
    rows = rule.unexpected.limit(MAX_EXAMPLES).to_pyarrow().to_pylist() if count else []
    return _result(rule, count, rows)


# --------------------------------------------------------------------------- feature tables


def _feature_table_rules(tenure: Table, snapshots: Table) -> list[_Rule]:
    """The checks on the built tables: keys, counts, nulls, and labels only where known."""
    rules: list[_Rule] = []

    def add(rule: str, table: str, description: str, unexpected: Table) -> None:
        rules.append(_Rule(rule, table, description, unexpected))

    for name, t, keys in (
        ("tenure", tenure, ["account_id"]),
        ("snapshots", snapshots, ["account_id", "snapshot_date"]),
    ):
        dup = t.group_by(keys).aggregate(rows=t.count()).filter(lambda g: g.rows > 1)
        add(f"{name}.key.unique", name, f"{name} has one row per {' and '.join(keys)}", dup)
        required = [c for c in (*keys, "seats", "plan") if c in t.columns]
        required += [
            c for c in ("labelled", "window_closed", "censored", "tenure_days") if c in t.columns
        ]
        cond = None
        for c in required:
            cond = t[c].isnull() if cond is None else (cond | t[c].isnull())
        add(
            f"{name}.required.not_null",
            name,
            f"{name} has no null in {', '.join(required)}",
            t.filter(cond).select(*keys, *[c for c in required if c not in keys]),
        )
        counts = [
            c
            for c in t.columns
            if c.endswith(("__count", "__days", "__used", "__per_seat"))
            or c.startswith(("gw__", "aw__", "maturity__"))
            or c in ("activation_count", "utilization_rate", "utilization_raw", "tenure_days")
        ]
        if counts:
            # One flat least() per row, not an OR over every column: the expression's depth
            # stays constant, one term per column (a nested OR of a few thousand columns ran
            # out of Python's recursion limit), and the selection of judged features bounds
            # the number of columns whatever the number of event names. least() skips nulls.
            lowest = ibis.least(*(t[c].cast("float64") for c in counts))
            add(
                f"{name}.counts.non_negative",
                name,
                f"every count and rate of {name} is >= 0",
                t.filter(lowest < 0).select(*keys),
            )
    add(
        "tenure.label.only_when_labelled",
        "tenure",
        "tenure rows carry a retention label exactly when they are labelled",
        tenure.filter(tenure.labelled != tenure.retained.notnull()).select(
            "account_id", "labelled", "retained"
        ),
    )
    add(
        "snapshots.label.only_uncensored",
        "snapshots",
        "snapshot rows carry a retention label exactly when they are not censored",
        snapshots.filter(snapshots.censored == snapshots.retained.notnull()).select(
            "account_id", "snapshot_date", "censored", "retained"
        ),
    )
    return rules


@young_gc
def validate_feature_tables(con, tables: dict[str, Table]) -> ValidationReport:
    """Check built feature tables: keys, required values, counts and labels.

    One query counts the rows of each table and the rows that break each rule (every rule's
    count in one statement, as a cross join of one-row aggregates); only a broken rule's
    first rows are then fetched, by a query of its own. The counts are those Great
    Expectations reports for the same rules (which ran them one suite per table, about
    0.2 s at 10M events, whereas this pass takes a few hundredths of a second), and the
    same on every engine.

    Parameters
    ----------
    con : ibis backend
    tables : dict
        ``{"tenure": table, "snapshots": table}``, best materialised (each rule reads its
        table again).

    Returns
    -------
    ValidationReport
        With the tables' row counts; its ``as_of`` is None.
    """
    engine = engine_of(con)
    rules = _feature_table_rules(tables["tenure"], tables["snapshots"])
    counted = [*tables.values(), *(rule.unexpected for rule in rules)]
    parts = [t.aggregate(**{f"_n{k}": t.count()}) for k, t in enumerate(counted)]
    row = parts[0].cross_join(*parts[1:]).to_pyarrow().to_pylist()[0]
    counts = [int(row[f"_n{k}"]) for k in range(len(counted))]
    row_counts = dict(zip(tables, counts[: len(tables)], strict=True))
    results = []
    for rule, count in zip(rules, counts[len(tables) :], strict=True):
        rows = rule.unexpected.limit(MAX_EXAMPLES).to_pyarrow().to_pylist() if count else []
        results.append(_result(rule, count, rows))
    return ValidationReport(results, row_counts, engine=engine)
