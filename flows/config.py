"""The pipeline's configuration: one YAML file parsed into one typed pydantic model.

:func:`load_config` reads, checks and resolves it once: relative paths become absolute
(against the YAML file's own folder), ``data.as_of`` becomes naive UTC, the tracking store and
the engine are settled (command-line overrides applied). Everything downstream reads the
resolved values and never resolves again. Any problem (unknown key, missing key, wrong type)
raises :class:`~flows.errors.ConfigError` whose message names the key path, for example
``milestones.activation.window_days: expected a positive integer, got 'sixty'``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.values import naive_utc
from flows.errors import ConfigError
from models import defaults as D

HISTORY_FILE = "milestone_history.duckdb"

PosInt = Annotated[int, Field(gt=0, strict=False)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Model):
    """Where the two input tables live: files, a DuckDB file (``database``), or a database
    reached by URL (``url``), whose ``accounts`` and ``events`` are then table names."""

    accounts: str = Field(
        description="Parquet or CSV file, or a table name inside `database` or at `url` "
        "(`table` or `schema.table`)."
    )
    events: str = Field(
        description="Parquet or CSV file, or a table name inside `database` or at `url` "
        "(`table` or `schema.table`)."
    )
    database: str | None = Field(
        default=None, description="A DuckDB database file holding the two tables."
    )
    url: str | None = Field(
        default=None,
        description="A database Ibis connects to by URL, e.g. "
        "`postgres://milestones@db.internal:5432/analytics` (PostgreSQL needs the `postgres` "
        "extra). No password in the file: write `${NAME}` where the environment holds it "
        "(`postgres://milestones:${MILESTONES_DB_PASSWORD}@db.internal/analytics`), or leave "
        "it out and let libpq read PGPASSWORD (or ~/.pgpass; PGUSER, PGHOST too). The tables "
        "are copied into DuckDB as they are read; the URL is only ever shown without password.",
    )
    as_of: dt.datetime | None = Field(
        default=None,
        description="Scoring date, held as naive UTC (a value with an offset is converted). "
        "Default: the latest event time.",
    )
    columns: dict[str, str | dict[str, str]] = Field(
        default_factory=dict,
        description="Contract column -> the source's column name. Flat, {account_id: org_id, "
        "occurred_at: ts}: applied to each table whose contract has the column. Per table, "
        "{accounts: {account_id: id}, events: {account_id: org_id, occurred_at: ts}}: each "
        "table its own (a table left out keeps its names).",
    )
    timestamps: dict[str, Literal["iso", "seconds", "milliseconds"]] = Field(
        default_factory=dict,
        description="Timestamp column (signup_at, churned_at, occurred_at) -> how the source "
        "holds it: iso (default: a timestamp, a date or ISO 8601 text), or epoch seconds or "
        "milliseconds (numbers, or numeric CSV text), read as UTC.",
    )

    @field_validator("url")
    @classmethod
    def _no_password(cls, v: str | None) -> str | None:
        from features.io import literal_secret

        if v is None:
            return v
        if not v.strip() or "://" not in v:
            raise ValueError("expected a database URL such as postgres://user@host:5432/database")
        secret = literal_secret(v)
        if secret:
            raise ValueError(
                f"the URL holds a password ({secret}): keep it out of the file; write "
                "${NAME} in its place and set the environment variable NAME, or leave it out "
                "and set PGPASSWORD (PostgreSQL)"
            )
        return v

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> DataConfig:
        if self.url is not None and self.database is not None:
            raise ValueError(
                "data.url and data.database are both set: the tables are read from one of them"
            )
        return self

    @field_validator("columns")
    @classmethod
    def _contract_columns(cls, v: dict[str, Any]) -> dict[str, Any]:
        from features.mapping import check_column_mapping

        check_column_mapping(v)
        return v

    @field_validator("timestamps")
    @classmethod
    def _timestamp_columns(cls, v: dict[str, str]) -> dict[str, str]:
        from features.mapping import check_timestamp_units

        check_timestamp_units(v)
        return v

    @field_validator("as_of")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        v = naive_utc(v)
        limit = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
        if v is not None and v > limit:
            raise ValueError(
                f"{v.isoformat()} is in the future of this machine's clock (now "
                f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC): as_of may be at most a day "
                "ahead; scores can only be as of a time that has come"
            )
        return v


class RetentionConfig(_Model):
    horizon_days: PosInt = 180
    churn: Literal["column", "inactivity"] = Field(
        default="column",
        description="Where churn comes from: `column`, the accounts' `churned_at`; "
        "`inactivity`, derived from the event log (an account churned at its last event when "
        "it then stays silent longer than `inactivity_gap_days`).",
    )
    inactivity_gap_days: PosInt | None = Field(
        default=None,
        description="With `churn: inactivity`, the silence (days) after which an account has "
        "churned; null: fitted to the product's usage (the shortest gap after which few "
        "silent accounts ever return).",
    )


class SetupConfig(_Model):
    window_days: PosInt = 21
    steps: list[str] = Field(default_factory=list, description="Candidate onboarding steps.")
    pinned_steps: list[str] | None = Field(
        default=None, description="Use exactly these steps instead of selecting them."
    )
    max_prevalence: Share = Field(
        default=D.SETUP_MAX_PREVALENCE,
        description="A step done by a larger share of accounts is routine.",
    )
    min_lift: float = Field(
        default=D.SETUP_MIN_LIFT,
        gt=0,
        description="A step is selected when the lower end of its activation-lift interval "
        "is above this ratio.",
    )


class ActivationConfig(_Model):
    event: str
    window_days: PosInt = 60
    threshold: float | None = Field(default=None, description="Pin the threshold.")
    inactivity_period_days: PosInt = 30
    inactivity_horizon_days: PosInt = 90


class UtilizationConfig(_Model):
    event: str
    per_seat: bool = True
    period_days: PosInt = D.UTILIZATION_PERIOD_DAYS
    window_days: PosInt = 90
    threshold: float | None = Field(default=None, description="Pin the threshold.")


_PLAIN_NAME = re.compile(r"[\w\-. ]+")


class MaturityConfig(_Model):
    window_days: PosInt = 90
    min_categories: PosInt | None = Field(
        default=None,
        description="Mature overall at this many mature categories; derived if absent.",
    )
    categories: dict[str, list[str]] = Field(default_factory=dict)
    thresholds: dict[str, PosInt] = Field(
        default_factory=dict, description="Pin a category's threshold (distinct features)."
    )

    @field_validator("categories")
    @classmethod
    def _plain_category_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # the names become MLflow parameter keys and column labels: plain words only
        bad = [name for name in value if not _PLAIN_NAME.fullmatch(name)]
        if bad:
            shown = ", ".join(repr(name) for name in bad)
            raise ValueError(
                f"category names must be plain words (letters, digits, '_', '-', '.' and "
                f"spaces), got {shown}"
            )
        return value

    @model_validator(mode="after")
    def _known_categories(self) -> MaturityConfig:
        for name in self.thresholds:
            if name not in self.categories:
                raise ValueError(f"thresholds names unknown category '{name}'")
        for name, features in self.categories.items():
            if not features:
                raise ValueError(f"category '{name}' lists no features")
        return self


class MilestonesConfig(_Model):
    setup: SetupConfig = Field(default_factory=SetupConfig)
    activation: ActivationConfig
    utilization: UtilizationConfig
    maturity: MaturityConfig = Field(default_factory=MaturityConfig)


class SnapshotsConfig(_Model):
    frequency: Literal["month_end"] = "month_end"
    max_snapshots: PosInt = Field(default=24, description="Newest snapshot dates kept.")
    max_rows: PosInt = Field(
        default=300_000,
        description="Row budget of the snapshot rows analysed in memory (training, importance, "
        "thresholds, review): when the engine's snapshot table has more rows, a seeded sample "
        "of whole accounts (`seed`) is taken, in random order until the next account would "
        "exceed the budget. The feature-table checks still read every row; the live accounts "
        "are always scored whole.",
    )


class FeaturesConfig(_Model):
    golden_week_days: PosInt = 7
    trailing_days: PosInt | None = Field(
        default=None,
        description="Trailing window of the per-feature snapshot columns; "
        "default: milestones.maturity.window_days.",
    )
    min_accounts: PosInt = Field(
        default=D.MIN_FEATURE_ACCOUNTS,
        description="An event is judged by the models only when at least this many accounts "
        "use it; rarer events are listed in importance.csv as too rare to judge.",
    )
    max_features: PosInt = Field(
        default=D.MAX_JUDGED_FEATURES,
        description="At most this many features are judged by the models (those used by the "
        "most accounts), besides the configured events; the rest are listed in importance.csv "
        "as too rare to judge.",
    )
    include: list[str] = Field(
        default_factory=list,
        description="Glob patterns (fnmatch, case-sensitive) of event names to judge; "
        "empty: every event.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns of event names never judged (listed as excluded).",
    )
    rollup: dict[str, str] = Field(
        default_factory=dict,
        description="Feature name -> glob pattern: the events matching the pattern are "
        "counted as one feature (for example {page_view: 'page_view:*'}).",
    )


class ThresholdsConfig(_Model):
    min_side_share: Share = Field(
        default=D.MIN_SIDE_SHARE, description="Minimum share of rows on each side."
    )
    bootstrap: PosInt = D.N_BOOTSTRAP
    confidence: Share = D.CONFIDENCE
    max_ci_ratio: Annotated[float, Field(gt=1.0)] = Field(
        default=D.MAX_CI_RATIO,
        description="A milestone whose threshold interval's upper bound exceeds this many "
        "times its lower bound is unconfirmed (too wide to act on).",
    )
    utilization_after_onboarding: bool = Field(
        default=True,
        description="Derive the utilization threshold only on snapshots whose utilization "
        "window starts after the activation window (tenure >= activation + utilization "
        "window days): a younger account's rate mixes onboarding volume into usage.",
    )


class ModelsConfig(_Model):
    row_budget: PosInt = Field(default=60_000, description="Rows sampled for training.")
    test_snapshots: PosInt = Field(
        default=D.TEST_SNAPSHOTS,
        description="Newest labelled snapshot dates held out as the test set.",
    )
    test_account_share: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=D.TEST_ACCOUNT_SHARE,
        description="Share of the accounts seen at the test dates that go to the test set; the "
        "others keep their older rows in training (1.0 leaves only churned accounts in training, "
        "which biases the probabilities low).",
    )
    n_estimators: PosInt = D.N_ESTIMATORS
    permutation_repeats: PosInt = D.PERMUTATION_REPEATS
    breadth: bool = Field(
        default=True,
        description="Let the models see, per maturity category, how many of its features a "
        "row used (computed inside the models, so importance stays per feature).",
    )
    importance_rows: Literal["held_out", "test"] = Field(
        default="held_out",
        description="Rows for permutation importance: every labelled row of the accounts "
        "kept out of training (several times the test set's churners), or the test set only.",
    )


class ImportanceConfig(_Model):
    prevalence_band: tuple[Share, Share] = Field(
        default=D.PREVALENCE_BAND,
        description="Prevalence inside which a feature can be a candidate.",
    )
    min_importance: float = Field(
        default=D.MIN_IMPORTANCE, ge=0, description="Minimum permutation importance (AUC drop)."
    )
    lift_snapshots: PosInt = Field(
        default=D.LIFT_SNAPSHOTS,
        description="Newest labelled snapshot dates pooled for the retention lifts "
        "(cluster-robust intervals over accounts); prevalence uses the newest only.",
    )
    intensity_rule: bool = Field(
        default=True,
        description="A feature above the band whose intensity (count per seat) predicts "
        "retention within plans, and that is important, is a milestone candidate.",
    )
    max_rows: PosInt | None = Field(
        default=D.PERMUTATION_MAX_ROWS,
        description="Rows sampled for the permutation importance (None: all).",
    )


class TrackingConfig(_Model):
    tracking_uri: str | None = Field(
        default=None, description="MLflow store; default: sqlite file under the project folder."
    )
    experiment: str = "milestones"
    model_name: str = "milestones-retention"
    promotion_margin: float = Field(default=0.01, ge=0)


class ReviewConfig(_Model):
    min_lift: float = Field(
        default=D.REVIEW_MIN_LIFT,
        gt=0,
        description="Warn when a milestone's lift on the newest out-of-time cohort is below this.",
    )


class ScoresConfig(_Model):
    columns: list[str] = Field(
        default_factory=list,
        description="Account columns (e.g. plan, seats, crm_id, owner) copied into scores.csv and "
        "scores.parquet right after the contract columns, for a CRM to import.",
    )

    @field_validator("columns")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        from models.scoring import REACHED_COLUMNS, SCORE_COLUMNS

        taken = {*SCORE_COLUMNS, *REACHED_COLUMNS, "risk_drivers", "previous_stage", "movement"}
        for name in v:
            if not name.strip():
                raise ValueError("an empty column name")
            if name in taken:
                raise ValueError(f"'{name}' is already a score column")
        twice = sorted({name for name in v if v.count(name) > 1})
        if twice:
            raise ValueError(f"listed twice: {', '.join(twice)}")
        return v


class ScheduleConfig(_Model):
    retrain: str = "0 3 1 * *"
    score: str = "0 6 * * *"


class DuckDBConfig(_Model):
    memory_limit: str | None = Field(
        default="4GB",
        pattern=r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
        description="DuckDB's memory limit (e.g. 4GB); past it, DuckDB spills to disk. "
        "null: DuckDB's default, 80% of the machine's memory.",
    )
    temp_directory: str | None = Field(
        default=None, description="Where DuckDB spills; default: DuckDB's own (.tmp)."
    )


class SparkConfig(_Model):
    master: str | None = Field(
        default=None,
        description="Spark master URL (spark://host:7077); default: local[*] in this process.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark settings (spark.executor.memory ...)."
    )


class Config(_Model):
    """The whole configuration."""

    data: DataConfig
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    milestones: MilestonesConfig
    snapshots: SnapshotsConfig = Field(default_factory=SnapshotsConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    thresholds: ThresholdsConfig = Field(default_factory=ThresholdsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    importance: ImportanceConfig = Field(default_factory=ImportanceConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    scores: ScoresConfig = Field(default_factory=ScoresConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = Field(default_factory=lambda: SparkConfig())
    duckdb: DuckDBConfig = Field(default_factory=lambda: DuckDBConfig())
    seed: int = 42
    out: str | None = Field(default=None, description="Default output folder.")
    history: str | None = Field(
        default=None,
        description="DuckDB file of the score history; default: milestone_history.duckdb "
        "beside the output folder.",
    )
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: Path | None = Field(default=None, exclude=True, description="The YAML file read.")

    @model_validator(mode="after")
    def _url_on_duckdb(self) -> Config:
        if self.data.url and self.engine != "duckdb":
            raise ValueError(
                "data.url is read with engine duckdb (the tables are copied into it); with "
                "Spark, export the tables to Parquet and name the files"
            )
        return self

    @property
    def trailing_days(self) -> int:
        return self.features.trailing_days or self.milestones.maturity.window_days

    @property
    def out_dir(self) -> Path:
        """The default output folder: ``out``, else ``out/<config folder>`` beside it."""
        if self.out:
            return Path(self.out)
        return (self.base_dir / ".." / "out" / self.base_dir.name).resolve()

    def history_file(self, out: Path) -> Path:
        """The DuckDB file of the score history: ``history``, else beside the output folder."""
        return Path(self.history) if self.history else Path(out).parent / HISTORY_FILE

    def input_files(self) -> list[Path]:
        """The files that hold the input data (for the run's fingerprint); none for a URL."""
        if self.data.url:
            return []
        if self.data.database:
            return [Path(self.data.database)]
        return [Path(self.data.accounts), Path(self.data.events)]

    def configured_events(self) -> dict[str, str]:
        """Every event the configuration names, with the key path that names it."""
        m = self.milestones
        named: dict[str, str] = {}
        for step in m.setup.steps:
            named.setdefault(step, "milestones.setup.steps")
        named.setdefault(m.activation.event, "milestones.activation.event")
        named.setdefault(m.utilization.event, "milestones.utilization.event")
        for cat, feats in m.maturity.categories.items():
            for f in feats:
                named.setdefault(f, f"milestones.maturity.categories.{cat}")
        return named


def _expected(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """Plain words for what the field at ``loc`` expects, when it is a positive integer."""
    current: Any = model
    field = None
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        # unwrap Optional[...]
        args = getattr(current, "__args__", None)
        if args:
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            current = models[0] if models else current
    if field is None:
        return None
    gt = [m.gt for m in field.metadata if hasattr(m, "gt") and m.gt is not None]
    if gt == [0] and field.annotation in (int, int | None):
        return "expected a positive integer"
    return None


def format_validation_error(err: ValidationError, model: type[BaseModel] = Config) -> str:
    """One line per problem, each naming the key path."""
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        kind = e["type"]
        got = e.get("input")
        if kind == "missing":
            msg = "required key is missing"
        elif kind == "extra_forbidden":
            msg = "unknown key"
        else:
            words = _expected(model, loc)
            if words and kind in {"int_parsing", "int_type", "greater_than", "int_from_float"}:
                msg = f"{words}, got {got!r}"
            else:
                text = e["msg"]
                text = text.removeprefix("Value error, ")
                msg = f"{text}, got {got!r}" if kind != "value_error" else text
        lines.append(f"{path}: {msg}")
    return "\n".join(lines)


def load_config(path: str | Path, **overrides: Any) -> Config:
    """Read and check a YAML configuration.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    **overrides
        Top-level values that replace the file's (for example ``engine="spark"``), or
        dotted keys such as ``data.as_of``.

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, or breaks a rule; the message names the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (an invalid byte at offset {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    for key, value in overrides.items():
        if value is None:
            continue
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    raw["base_dir"] = path.resolve().parent
    raw["source"] = path.resolve()
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: invalid configuration\n" + format_validation_error(exc)
        ) from exc
    return _resolved(cfg)


def _absolute(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def tracking_uri(configured: str | None, base: Path) -> str:
    """The MLflow store: the configured URI (a relative ``sqlite:///`` path against ``base``),
    else ``MLFLOW_TRACKING_URI``, else the project's SQLite file."""
    from flows.runtime import default_tracking_uri

    if not configured:
        return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    prefix = "sqlite:///"
    if configured.startswith(prefix) and not configured.startswith(prefix + "/"):
        return prefix + _absolute(base, configured[len(prefix) :])
    return configured


def _resolved(cfg: Config) -> Config:
    """Every path absolute, the tracking store settled: done once, at load."""
    base = cfg.base_dir
    data = cfg.data
    if data.url:
        pass  # accounts and events are table names of that database
    elif data.database:
        data = data.model_copy(update={"database": _absolute(base, data.database)})
    else:
        data = data.model_copy(
            update={
                "accounts": _absolute(base, data.accounts),
                "events": _absolute(base, data.events),
            }
        )
    tracking = cfg.tracking.model_copy(
        update={"tracking_uri": tracking_uri(cfg.tracking.tracking_uri, base)}
    )
    duck = cfg.duckdb.model_copy(
        update={"temp_directory": _absolute(base, cfg.duckdb.temp_directory)}
    )
    return cfg.model_copy(
        update={
            "duckdb": duck,
            "data": data,
            "tracking": tracking,
            "out": _absolute(base, cfg.out),
            "history": _absolute(base, cfg.history),
        }
    )
