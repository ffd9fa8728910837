"""Step 1: open the input tables and check them against the data contract."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.config import Config
from flows.errors import ConfigError, InvalidInputError, MilestonesError
from flows.store.publish import write_text_atomic

log = logging.getLogger("milestones")


@dataclass
class Inputs:
    """The open engine connection, the typed input tables and the run's ``as_of``."""

    con: Any
    accounts: Any
    events: Any
    as_of: dt.datetime
    validation: dict = field(default_factory=dict)
    # Great Expectations' suites and results of the contract's rules, for the data docs
    expectation_results: list = field(default_factory=list, repr=False)


def validation_sidecar(out: Path) -> Path:
    """Where a run's validation result is kept beside the output folder."""
    out = Path(out)
    return out.with_name(out.name + ".validation.json")


def open_inputs(cfg: Config) -> Inputs:
    """Read both tables, check every rule of the data contract, type them.

    Raises
    ------
    InvalidInputError
        When a table cannot be read or a rule breaks; ``details`` holds the whole result.
    """
    from features.expectations import collecting_results
    from features.io import connect, input_source, read_inputs, typed_accounts, typed_events
    from features.mapping import contract_inputs
    from features.validation import validate_inputs

    try:
        con = connect(
            cfg.engine,
            spark_master=cfg.spark.master,
            spark_conf=cfg.spark.conf,
            memory_limit=cfg.duckdb.memory_limit,
            temp_directory=cfg.duckdb.temp_directory,
        )
    except (ConnectionError, ValueError) as exc:  # a Spark master that is absent or taken
        raise MilestonesError(f"cannot start the Spark session: {exc}") from None
    # (on Spark, a name that is no file is a table of the Spark catalog)
    where = dict(
        database=cfg.data.database, url=cfg.data.url, engine=cfg.engine, base_dir=cfg.base_dir
    )
    try:
        accounts_raw, events_raw = contract_inputs(
            *read_inputs(
                con,
                input_source(cfg.data.accounts, **where),
                input_source(cfg.data.events, **where),
            ),
            columns=cfg.data.columns,
            timestamps=cfg.data.timestamps,
        )
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the input data: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0].lstrip("_") not in ("duckdb", "pyspark", "py4j"):
            raise
        raise InvalidInputError(f"cannot read the input data: {exc}") from None
    check_score_columns(cfg.scores.columns, list(accounts_raw.columns))
    with collecting_results() as expectation_results:
        report = validate_inputs(
            con,
            accounts_raw,
            events_raw,
            as_of=cfg.data.as_of,
            configured_events=cfg.configured_events(),
            churn_column=cfg.retention.churn == "column",
        )
    if not report.ok:
        raise InvalidInputError(report.format(), report.to_dict())
    if cfg.retention.churn == "inactivity":
        inputs = with_inactivity_churn(cfg, con, accounts_raw, events_raw, report)
    else:
        inputs = Inputs(
            con,
            typed_accounts(accounts_raw),
            typed_events(events_raw),
            report.as_of,
            report.to_dict(),
        )
    inputs.expectation_results = expectation_results
    return inputs


DATA_DOCS = "data_docs"


def write_data_docs(folder: Path, inputs: Inputs) -> Path | None:
    """Great Expectations' data docs of the input validation, in ``folder/data_docs``.

    Returns the index page, or None when no rule ran through Great Expectations (Spark).
    """
    if not inputs.expectation_results:
        return None
    from features.expectations import write_data_docs as build

    return build(Path(folder) / DATA_DOCS, inputs.expectation_results)


def with_inactivity_churn(cfg: Config, con: Any, accounts_raw: Any, events_raw: Any, report: Any):
    """The validated inputs with ``churned_at`` derived from silence (``retention.churn:
    inactivity``); the gap and its return rate go to the validation result and the log."""
    from features.churn import derive_inactivity_churn, without_churn_column
    from features.io import typed_accounts, typed_events

    if "churned_at" in accounts_raw.columns:
        log.info(
            "      retention.churn is inactivity: the accounts' churned_at column is ignored "
            "(churn is derived from the events)"
        )
    accounts, churn = derive_inactivity_churn(
        con,
        typed_accounts(without_churn_column(accounts_raw)),
        typed_events(events_raw),
        as_of=report.as_of,
        gap_days=cfg.retention.inactivity_gap_days,
    )
    rate = "n/a" if churn.return_rate is None else f"{churn.return_rate:.1%}"
    target = f"{churn.max_return_rate:.0%}"
    caveat = ""
    if not churn.reached_target:
        caveat = (
            f"; no gap up to 365 days brings the return rate to {target}"
            if churn.fitted
            else f"; above the {target} that the fit aims at"
        )
    log.log(
        logging.INFO if churn.reached_target else logging.WARNING,
        "      churn from inactivity: a gap of %d days (%s; %s of silent accounts return%s), "
        "%d accounts churned, %d live",
        churn.gap_days,
        "fitted" if churn.fitted else "configured",
        rate,
        caveat,
        churn.churned,
        churn.live,
    )
    validation = {**report.to_dict(), "churn": churn.to_dict()}
    return Inputs(con, accounts, typed_events(events_raw), report.as_of, validation)


def check_score_columns(configured: list[str], accounts_columns: list[str]) -> None:
    """Every pass-through column of ``scores.columns`` is a column of the accounts table.

    Raises
    ------
    ConfigError
        Naming each configured column the accounts table lacks, and the columns it has.
    """
    missing = [c for c in configured if c not in accounts_columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        shown = ", ".join(accounts_columns[:30]) + (", ..." if len(accounts_columns) > 30 else "")
        raise ConfigError(
            f"scores.columns: the accounts table has no column {names} (its columns: {shown})"
        )


def validate_and_record(
    cfg: Config, out_dir: Path, validate: Any = open_inputs, publishing: bool = False
) -> Inputs:
    """Validate the inputs and keep the result beside the output folder.

    ``<out>.validation.json`` always describes the validation that last decided what ``out``
    holds: inputs that break a rule write it (the run stops there, exit 2, and the side file
    says why ``out`` was kept); ``milestones validate`` writes it, pass or fail. A run or
    scoring that passes (``publishing``) leaves it alone here: its result is written at
    publication, next to the folder it describes, so a run that passes validation but never
    publishes (a later failure, a kill) never rewrites it.
    """
    target = validation_sidecar(out_dir)
    try:
        inputs = validate(cfg)
    except InvalidInputError as exc:
        write_text_atomic(target, json.dumps(exc.details, indent=2, default=str))
        raise
    if not publishing:
        write_text_atomic(target, json.dumps(inputs.validation, indent=2, default=str))
    return inputs
