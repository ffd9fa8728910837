"""The `milestones` command line.

Exit status: 0 done, 2 invalid input or configuration, 1 anything else. Heavy libraries are
imported inside the commands so that ``milestones --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help=(
        "Learn customer milestones (setup, activation, utilization, maturity) from who stayed "
        "and who left, rank product features against adoption, and score every live account."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's wrapped lines form one paragraph
)

ConfigOpt = typer.Option(..., "--config", "-c", help="The YAML configuration file.", exists=False)
EngineOpt = typer.Option(None, "--engine", help="Override the engine: duckdb (default) or spark.")
OutOpt = typer.Option(
    None,
    "--out",
    "-o",
    help="Output folder (default: the config's `out`, else out/ followed by the config file name).",
)
AsOfOpt = typer.Option(None, "--as-of", help="Override data.as_of (UTC date or timestamp).")
ColumnOpt = typer.Option(
    None,
    "--column",
    help="CONTRACT=SOURCE: read a contract column under the source's own name "
    "(repeatable, e.g. --column account_id=org_id --column occurred_at=ts); data.columns.",
)
TimestampOpt = typer.Option(
    None,
    "--timestamps",
    help="COLUMN=UNIT: how a timestamp column is held, iso, seconds or milliseconds "
    "(repeatable, e.g. --timestamps occurred_at=milliseconds); data.timestamps.",
)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _start(verbose: bool = False, quiet_runs: bool = True) -> None:
    from flows.runtime import configure_environment, setup_logging

    configure_environment(quiet_runs=quiet_runs)
    setup_logging(verbose, quiet_runs=quiet_runs)


def _guard(command: str, fn):
    """Run a command body: an expected error prints its message alone and exits with its
    status; an unexpected one leaves its traceback in a log file and exits with 1."""
    from flows.errors import InvalidInputError, MilestonesError

    try:
        return fn()
    except typer.Exit:
        raise
    except InvalidInputError as exc:
        _fail("invalid input data\n" + str(exc), exc.exit_code)
    except MilestonesError as exc:
        _fail(str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that maps errors
        from flows.runtime import write_crash_log

        path = write_crash_log(exc, command)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        where = f"; the traceback is in {path}" if path else ""
        _fail(f"unexpected {type(exc).__name__}: {first}{where}", 1)


def _load(config: Path, engine: str | None = None, as_of: str | None = None):
    from flows.config import load_config

    return load_config(config, engine=engine, **{"data.as_of": as_of})


def _no_heartbeat():
    """Prefect's flow-run heartbeat costs about 1 s per run and tells a one-shot run nothing."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


@app.command()
def run(
    config: Path = ConfigOpt,
    out: Path | None = OutOpt,
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log lines."),
) -> None:
    """Run the whole pipeline: validate, build features, train, derive thresholds, score, publish.

    Writes thresholds.json, importance.csv, scores.csv, scores.parquet and report.html into the
    output folder atomically (all or nothing), and logs an MLflow run.
    """
    _start(verbose)

    def body():
        cfg = _load(config, engine, as_of)  # fail fast, before Prefect starts
        from flows.retrain import retrain_flow

        with _no_heartbeat():
            result = retrain_flow(cfg, str(out) if out else None)
        for line in result.get("verdict", []):  # what the data could not confirm, first
            typer.echo(line)
        typer.echo(f"report: {result['report']}")
        typer.echo(f"scores: {result['scores']}")
        typer.echo(f"mlflow run: {result['run_id']}")

    _guard("run", body)


@app.command()
def score(
    config: Path = ConfigOpt,
    out: Path | None = OutOpt,
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
) -> None:
    """Score the live accounts with the current champion's thresholds and model (no training).

    Fails with exit status 1 when no champion has been trained yet (run `milestones run` first).
    Appends the scores to the history table and publishes scores.csv / scores.parquet.
    """
    _start()

    def body():
        cfg = _load(config, engine, as_of)
        from flows.score import score_flow

        with _no_heartbeat():
            result = score_flow(cfg, str(out) if out else None)
        typer.echo(f"scores: {result['scores']}")
        typer.echo(f"mlflow run: {result['run_id']}")

    _guard("score", body)


@app.command()
def serve(
    config: Path = ConfigOpt,
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder of both deployments."),
) -> None:
    """Serve the retrain and score deployments on their crons (schedule.retrain, schedule.score).

    Uses the Prefect server at PREFECT_API_URL (its credential is yours to set), or starts one
    on 127.0.0.1 for as long as it serves, which requires the user:password credential written
    to PREFECT_HOME/serve.auth (mode 0600). A flow run may only use this configuration and write
    inside the output folder (--out, else the configuration's). Stop with Ctrl-C.
    """
    _start(quiet_runs=False)

    def body():
        _load(config)
        from flows.serve import serve as serve_deployments

        serve_deployments(config, out)

    _guard("serve", body)


@app.command()
def validate(
    config: Path = ConfigOpt,
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output folder whose side file OUT.validation.json receives the result.",
    ),
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
) -> None:
    """Check the input data against the data contract only (exit 2 when a rule breaks)."""
    _start()

    def body():
        from flows.errors import InvalidInputError
        from flows.steps.inputs import validate_and_record, validation_sidecar

        cfg = _load(config, engine, as_of)
        out_dir = Path(out).resolve() if out else cfg.out_dir
        target = validation_sidecar(out_dir)
        try:
            inputs = validate_and_record(cfg, out_dir)
        except InvalidInputError:
            typer.echo(f"validation result: {target}", err=True)
            raise
        typer.echo(f"all rules pass (as_of {inputs.as_of}); result: {target}")

    _guard("validate", body)


@app.command()
def features(
    config: Path = ConfigOpt,
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for tenure.parquet, snapshots.parquet and names.json."
    ),
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
) -> None:
    """Build the point-in-time feature tables and write them as Parquet (for notebooks), with
    names.json: the event name, step or category of each column code."""
    _start()

    def body():
        import json

        from flows.runtime import Stage
        from flows.steps.inputs import open_inputs
        from flows.steps.tables import build_feature_tables, write_snapshots
        from flows.store.publish import publish, staged

        cfg = _load(config, engine, as_of)
        with Stage(1, 2, "validate the inputs"):
            inputs = open_inputs(cfg)
        with Stage(2, 2, "build the feature tables") as st:
            tables = build_feature_tables(cfg, inputs, st)
        with staged(out.resolve()) as staging:
            tables.tenure.to_parquet(staging / "tenure.parquet", index=False)
            write_snapshots(tables, staging / "snapshots.parquet")  # every row
            tables.current.to_parquet(staging / "current.parquet", index=False)
            # columns carry codes of the event names: the lookup back to the names
            names = json.dumps(tables.names, indent=2, ensure_ascii=False, sort_keys=True)
            (staging / "names.json").write_text(names + "\n", encoding="utf-8")
            publish(staging, out.resolve())
        typer.echo(f"tables: {out.resolve()}")

    _guard("features", body)


@app.command()
def backtest(
    config: Path = ConfigOpt,
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for backtest.json and backtest.html (replaced whole)."
    ),
    origins: int | None = typer.Option(
        None, "--origins", min=1, help="How many past origins to test (default 2)."
    ),
    step_months: int | None = typer.Option(
        None,
        "--step-months",
        min=1,
        help="Months between origins (default 3); the newest origin lies "
        "retention.horizon_days (in whole months) before as_of.",
    ),
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log lines."),
) -> None:
    """Backtest the milestones: derive them at past origins, then measure what happened since.

    The newest origin is as_of (configured, else the latest event) minus the retention horizon
    in whole months, the latest origin whose outcome is known; the others are k steps before
    it. At each, the data
    are cut off as they stood then (later accounts, events and churn left out), the feature
    tables, models and thresholds are derived as `run` derives them (nothing is published to
    the model registry), and the accounts live at the origin are followed for
    retention.horizon_days in the real data: each milestone's retention lift with its interval,
    the model's ROC AUC and calibration against the plan-and-seats baseline, and the
    thresholds' stability across origins. Writes backtest.json and backtest.html atomically.
    Exit status 2 when the history before an origin is too short to derive the milestones.
    """
    _start(verbose)

    def body():
        from flows.steps.backtest import run_backtest

        result = run_backtest(_load(config, engine, as_of), out, origins, step_months)
        typer.echo(f"backtest: {result['json']}")
        typer.echo(f"report: {result['report']}")

    _guard("backtest", body)


@app.command()
def report(
    run_id: str = typer.Option(..., "--run", help="The MLflow run whose report to rebuild."),
    config: Path = ConfigOpt,
    out: Path = typer.Option(
        Path("report.html"),
        "--out",
        "-o",
        help="The report file, or a folder that receives report.html.",
    ),
) -> None:
    """Rebuild report.html from a past MLflow run's files (the config names the tracking store)."""
    _start()

    def body():
        from flows.steps.review import rebuild_report

        path = rebuild_report(_load(config), run_id, out.resolve())
        typer.echo(f"report: {path}")

    _guard("report", body)


@app.command()
def history(
    config: Path = ConfigOpt,
    account: str = typer.Option(..., "--account", "-a", help="The account's account_id."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output folder whose score history to read (default: the config's `out`, else "
        "out/<config folder>); the config's `history` key, when set, names the file itself.",
    ),
) -> None:
    """Show one account's score history: every publication, newest first, with its stage, its
    movement since the previous publication, the next step and the retention probability."""
    _start()

    def body():
        from flows.errors import NotFoundError
        from flows.store.history import account_history, history_table

        cfg = _load(config)
        path = cfg.history_file(Path(out).resolve() if out else cfg.out_dir)
        rows = account_history(path, account)
        if rows is None:
            raise NotFoundError(f"no score history at {path} (nothing published there yet)")
        if rows.empty:
            raise NotFoundError(f"account {account!r} has no score history in {path}")
        typer.echo(f"account {account}: {len(rows)} publication(s), newest first ({path})")
        typer.echo(history_table(rows))

    _guard("history", body)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``KEY=VALUE`` option values as a dict (an error naming the option otherwise)."""
    from flows.errors import ConfigError

    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise ConfigError(f"{option}: expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = val.strip()
    return pairs


def _mapping(columns: list[str] | None, timestamps: list[str] | None) -> tuple[dict, dict]:
    """--column and --timestamps, checked as data.columns and data.timestamps are."""
    import re

    from pydantic import ValidationError

    from flows.config import DataConfig, format_validation_error
    from flows.errors import ConfigError

    cols, stamps = _pairs(columns, "--column"), _pairs(timestamps, "--timestamps")
    try:
        DataConfig(accounts="a", events="e", columns=cols, timestamps=stamps)
    except ValidationError as exc:
        message = format_validation_error(exc, DataConfig)  # named as the options are
        message = re.sub(r"(?m)^columns\b", "--column", message)
        raise ConfigError(re.sub(r"(?m)^timestamps\b", "--timestamps", message)) from None
    return cols, stamps


def _profile_sources(config, accounts, events, engine, as_of, columns=None, timestamps=None):
    """The profile's configuration (or None) and sources: a configuration's, or two files."""
    from flows.errors import ConfigError
    from flows.steps.profile import Sources, sources_from_config

    if config is not None and (accounts is not None or events is not None):
        raise ConfigError("give either --config or --accounts and --events, not both")
    if config is not None and (columns or timestamps):
        raise ConfigError(
            "--column and --timestamps go with --accounts and --events; "
            "with --config, set data.columns and data.timestamps"
        )
    if config is not None:
        cfg = _load(config, engine, as_of)
        return cfg, sources_from_config(cfg)
    if accounts is None or events is None:
        raise ConfigError("give --accounts and --events (or --config)")
    cols, stamps = _mapping(columns, timestamps)
    src = Sources(
        accounts=str(accounts.resolve()),
        events=str(events.resolve()),
        columns=cols,
        timestamps=stamps,
        as_of=_as_of_value(as_of),
        engine=engine or "duckdb",
    )
    return None, src


def _as_of_value(as_of: str | None):
    from features.values import naive_utc
    from flows.errors import ConfigError

    try:
        return naive_utc(as_of)
    except ValueError:
        raise ConfigError(f"--as-of: expected an ISO date or timestamp, got {as_of!r}") from None


@app.command()
def profile(
    accounts: Path | None = typer.Option(
        None, "--accounts", "-a", help="The accounts table (Parquet or CSV)."
    ),
    events: Path | None = typer.Option(
        None, "--events", "-e", help="The events table (Parquet or CSV)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Read the configured sources instead (data.columns, data.timestamps, the "
        "database), with its churn rule and windows.",
    ),
    out: Path = typer.Option(
        Path("out/profile"), "--out", "-o", help="Folder for profile.html and profile.json."
    ),
    column: list[str] | None = ColumnOpt,
    timestamps: list[str] | None = TimestampOpt,
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
) -> None:
    """Describe the data as the milestone method needs it, on one page.

    History length, accounts and churn rate by month, events by reach and volume, each
    event's median first use after signup and its association with later retention (users
    against non-users in an early window: the risk ratio of staying, with its interval, and
    the early count that best separates who stays), how often active accounts are active
    (daily, weekly, monthly), seats and plans, and the return rate after silence gaps (the
    inactivity gap of `retention.churn: inactivity`). Computed in the engine; the inputs are
    validated first (exit 2 when a rule breaks). Writes profile.html and profile.json into
    the folder atomically.
    """
    _start()

    def body():
        from flows.runtime import Stage
        from flows.steps.profile import (
            build_profile,
            open_config_inputs,
            open_sources,
            write_profile,
        )

        cfg, src = _profile_sources(config, accounts, events, engine, as_of, column, timestamps)
        with Stage(1, 3, "validate the inputs"):
            inputs, churn = open_config_inputs(cfg) if cfg else open_sources(src)
        with Stage(2, 3, "profile the data"):
            result = build_profile(
                inputs,
                churn,
                windows=src.windows,
                sources={"accounts": src.accounts, "events": src.events},
            )
        with Stage(3, 3, "write the page"):
            page = write_profile(result, out)
        typer.echo(f"profile: {page}")
        typer.echo(f"data: {page.with_name('profile.json')}")

    _guard("profile", body)


@app.command()
def init(
    accounts: Path = typer.Option(..., "--accounts", "-a", help="The accounts table."),
    events: Path = typer.Option(..., "--events", "-e", help="The events table."),
    out: Path = typer.Option(..., "--out", "-o", help="The configuration file to write (YAML)."),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
    column: list[str] | None = ColumnOpt,
    timestamps: list[str] | None = TimestampOpt,
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
) -> None:
    """Propose a first configuration from the data, with the evidence for each proposal.

    Writes a commented YAML file of the same schema as configs/demo.yaml, ready for
    `milestones run`: the activation event (events ranked by how well an early count
    separates the customers who stay from those who leave, weighted by reach; the
    runners-up in comments), the setup candidates (what most accounts do first), maturity
    categories (features grouped by co-usage, named after their most used member, for you
    to rename or move), windows and horizon fitted to the usage frequency and the history,
    and per-seat utilization when seats vary. Nothing it proposes is final. An existing
    file is kept unless --force (exit 2).
    """
    _start()

    def body():
        from flows.steps.init import check_target, init_config

        check_target(out.resolve(), force)  # before any work
        cols, stamps = _mapping(column, timestamps)
        result = init_config(
            accounts,
            events,
            out,
            columns=cols,
            timestamps=stamps,
            force=force,
            as_of=_as_of_value(as_of),
            engine=engine or "duckdb",
        )
        typer.echo(f"configuration: {out.resolve()}")
        typer.echo(
            f"activation: {result['activation']!r}; {len(result['setup'])} setup candidates; "
            f"{len(result['categories'])} maturity categories (proposals: read the comments)"
        )

    _guard("init", body)


@app.command()
def demo(
    out: Path = typer.Option(
        Path("data/demo"), "--out", "-o", help="Folder for the generated data."
    ),
    accounts: int = typer.Option(
        10_000,  # features.demo.world.DEMO_ACCOUNTS, not imported so that --help stays instant
        "--accounts",
        "-n",
        min=50,
        help="Number of accounts. The default is the size at which the planted milestones "
        "and drivers come back on most generator seeds; smaller demos run faster but lose "
        "the weakest planted effects in the noise.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    effect: str = typer.Option(
        "planted",
        "--effect",
        help="planted (the milestones), weak (churn independent of usage) or smooth "
        "(retention rising gradually with use, no step).",
    ),
    names: str = typer.Option(
        "standard",
        "--names",
        help="standard, or messy (plus a long tail of oddly spelled noise event names).",
    ),
) -> None:
    """Generate the demo data (a fictional customer-support SaaS) with planted milestones.

    Writes accounts, events and truth.json (the planted thresholds) into the folder.
    """
    _start()

    def body():
        import logging

        from features.demo import write_demo

        log = logging.getLogger("milestones")
        if fmt not in ("parquet", "csv"):
            _fail(f"--format: expected 'parquet' or 'csv', got {fmt!r}", 2)
        if effect not in ("planted", "weak", "smooth"):
            _fail(f"--effect: expected 'planted', 'weak' or 'smooth', got {effect!r}", 2)
        if names not in ("standard", "messy"):
            _fail(f"--names: expected 'standard' or 'messy', got {names!r}", 2)
        result = write_demo(
            out,
            n_accounts=accounts,
            seed=seed,
            fmt=fmt,
            progress=log.info,
            effect=effect,
            names=names,
        )
        typer.echo(
            f"demo data: {result['n_accounts']} accounts, {result['n_events']} events in {out}"
        )

    _guard("demo", body)


def main() -> None:  # pragma: no cover - the console script
    from flows.runtime import hard_exit

    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    hard_exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
