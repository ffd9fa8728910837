"""Step 1: open the input tables and check them against the data contract."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.config import Config
from flows.errors import ConfigError, InvalidInputError
from flows.store.publish import write_text_atomic


@dataclass
class Inputs:
    """The open engine connection, the typed input tables and the run's ``as_of``."""

    con: Any
    accounts: Any
    events: Any
    as_of: dt.datetime
    validation: dict = field(default_factory=dict)


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
    from features.io import Source, connect, read_inputs, typed_accounts, typed_events
    from features.validation import validate_inputs

    con = connect(cfg.engine)
    db = cfg.data.database
    try:
        accounts_raw, events_raw = read_inputs(
            con, Source(cfg.data.accounts, db), Source(cfg.data.events, db)
        )
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the input data: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0].lstrip("_") not in ("duckdb", "pyspark", "py4j"):
            raise
        raise InvalidInputError(f"cannot read the input data: {exc}") from None
    check_score_columns(cfg.scores.columns, list(accounts_raw.columns))
    report = validate_inputs(
        con,
        accounts_raw,
        events_raw,
        as_of=cfg.data.as_of,
        configured_events=cfg.configured_events(),
    )
    if not report.ok:
        raise InvalidInputError(report.format(), report.to_dict())
    return Inputs(
        con, typed_accounts(accounts_raw), typed_events(events_raw), report.as_of, report.to_dict()
    )


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
