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
)

ConfigOpt = typer.Option(..., "--config", "-c", help="The YAML configuration file.", exists=False)
EngineOpt = typer.Option(None, "--engine", help="Override the engine: duckdb (default) or spark.")
OutOpt = typer.Option(
    None, "--out", "-o", help="Output folder (default: the config's `out`, else out/<config>)."
)
AsOfOpt = typer.Option(None, "--as-of", help="Override data.as_of (UTC date or timestamp).")


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
        help="Output folder whose side file <out>.validation.json receives the result.",
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
        ..., "--out", "-o", help="Folder for tenure.parquet and snapshots.parquet."
    ),
    engine: str | None = EngineOpt,
    as_of: str | None = AsOfOpt,
) -> None:
    """Build the point-in-time feature tables and write them as Parquet (for notebooks)."""
    _start()

    def body():
        from flows.runtime import Stage
        from flows.steps.inputs import open_inputs
        from flows.steps.tables import build_feature_tables
        from flows.store.publish import publish, staged

        cfg = _load(config, engine, as_of)
        with Stage(1, 2, "validate the inputs"):
            inputs = open_inputs(cfg)
        with Stage(2, 2, "build the feature tables") as st:
            tables = build_feature_tables(cfg, inputs, st)
        with staged(out.resolve()) as staging:
            tables.tenure.to_parquet(staging / "tenure.parquet", index=False)
            tables.snapshots.to_parquet(staging / "snapshots.parquet", index=False)
            tables.current.to_parquet(staging / "current.parquet", index=False)
            publish(staging, out.resolve())
        typer.echo(f"tables: {out.resolve()}")

    _guard("features", body)


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


@app.command()
def demo(
    out: Path = typer.Option(
        Path("data/demo"), "--out", "-o", help="Folder for the generated data."
    ),
    accounts: int = typer.Option(5000, "--accounts", "-n", min=50, help="Number of accounts."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
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
        result = write_demo(out, n_accounts=accounts, seed=seed, fmt=fmt, progress=log.info)
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
