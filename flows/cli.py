"""The `milestones` command line.

Exit status: 0 done, 2 invalid input or configuration, 1 anything else. Heavy libraries are
imported inside the commands so that ``milestones --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

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
AsOfOpt = typer.Option(None, "--as-of", help="Override data.as_of (UTC date or timestamp).")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _start(verbose: bool = False) -> None:
    from flows.runtime import configure_environment, setup_logging

    configure_environment()
    setup_logging(verbose)


def _guard(fn):
    """Run a command body, mapping known errors to exit status 2 and others to 1."""
    from flows.config import ConfigError

    try:
        return fn()
    except typer.Exit:
        raise
    except ConfigError as exc:
        _fail(str(exc), 2)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that maps errors
        from flows.pipeline import InvalidInputError

        if isinstance(exc, InvalidInputError):
            _fail("invalid input data\n" + str(exc.args[0]), 2)
        from flows.tracking import NoChampionError

        if isinstance(exc, NoChampionError):
            _fail(str(exc), 1)
        if isinstance(exc, (FileNotFoundError,)):
            _fail(str(exc), 2)
        if isinstance(exc, ValueError) and type(exc).__module__.startswith(("features", "flows")):
            _fail(str(exc), 2)
        _fail(f"{type(exc).__name__}: {exc}", 1)


@app.command()
def run(
    config: Path = ConfigOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output folder (default: the config's `out`, else out/<config folder>)."
    ),
    engine: Optional[str] = EngineOpt,
    as_of: Optional[str] = AsOfOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log lines."),
) -> None:
    """Run the whole pipeline: validate, build features, train, derive thresholds, score, publish.

    Writes thresholds.json, importance.csv, scores.csv, scores.parquet and report.html into the
    output folder atomically (all or nothing), and logs an MLflow run.
    """
    _start(verbose)

    def body():
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from flows.config import load_config
        from flows.pipeline import pipeline

        load_config(config, engine=engine, **{"data.as_of": as_of})  # fail fast, before Prefect
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            result = pipeline(str(config), str(out) if out else None, engine, as_of)
        typer.echo(f"report: {result['report']}")
        typer.echo(f"scores: {result['scores']}")
        typer.echo(f"mlflow run: {result['run_id']}")

    _guard(body)


@app.command()
def score(
    config: Path = ConfigOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output folder (default: the config's `out`, else out/<config folder>)."
    ),
    engine: Optional[str] = EngineOpt,
    as_of: Optional[str] = AsOfOpt,
) -> None:
    """Score the live accounts with the current champion's thresholds and model (no training).

    Fails with exit status 1 when no champion has been trained yet (run `milestones run` first).
    Appends the scores to the history table and publishes scores.csv / scores.parquet.
    """
    _start()

    def body():
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from flows.config import load_config
        from flows.score import score_flow

        load_config(config, engine=engine, **{"data.as_of": as_of})
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            result = score_flow(str(config), str(out) if out else None, engine, as_of)
        typer.echo(f"scores: {result['scores']}")
        typer.echo(f"mlflow run: {result['run_id']}")

    _guard(body)


@app.command()
def serve(
    config: Path = ConfigOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder of both deployments."),
) -> None:
    """Serve the retrain and score deployments on their crons (schedule.retrain, schedule.score).

    Uses the Prefect server at PREFECT_API_URL, or starts one on 127.0.0.1 for as long as it
    serves. Stop with Ctrl-C.
    """
    _start()

    def body():
        from flows.config import load_config
        from flows.serve import serve as serve_deployments

        load_config(config)
        serve_deployments(config, out)

    _guard(body)


@app.command()
def validate(
    config: Path = ConfigOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output folder whose side file <out>.validation.json receives the result."
    ),
    engine: Optional[str] = EngineOpt,
    as_of: Optional[str] = AsOfOpt,
) -> None:
    """Check the input data against the data contract only (exit 2 when a rule breaks)."""
    _start()

    def body():
        from flows.config import load_config
        from flows.pipeline import (
            InvalidInputError,
            default_out,
            validate_and_record,
            validation_sidecar,
        )

        cfg = load_config(config, engine=engine, **{"data.as_of": as_of})
        out_dir = Path(out).resolve() if out else default_out(cfg)
        target = validation_sidecar(out_dir)
        try:
            inputs = validate_and_record(cfg, out_dir)
        except InvalidInputError:
            typer.echo(f"validation result: {target}", err=True)
            raise
        typer.echo(f"all rules pass (as_of {inputs.as_of}); result: {target}")

    _guard(body)


@app.command()
def features(
    config: Path = ConfigOpt,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for tenure.parquet and snapshots.parquet."),
    engine: Optional[str] = EngineOpt,
    as_of: Optional[str] = AsOfOpt,
) -> None:
    """Build the point-in-time feature tables and write them as Parquet (for notebooks)."""
    _start()

    def body():
        from flows.config import load_config
        from flows.pipeline import build_feature_tables, open_inputs
        from flows.publish import publish, staging_dir
        from flows.runtime import Stage

        cfg = load_config(config, engine=engine, **{"data.as_of": as_of})
        with Stage(1, 2, "validate the inputs"):
            inputs = open_inputs(cfg)
        with Stage(2, 2, "build the feature tables") as st:
            tables = build_feature_tables(cfg, inputs, st)
        staging = staging_dir(out.resolve())
        tables.tenure.to_parquet(staging / "tenure.parquet", index=False)
        tables.snapshots.to_parquet(staging / "snapshots.parquet", index=False)
        tables.current.to_parquet(staging / "current.parquet", index=False)
        publish(staging, out.resolve())
        typer.echo(f"tables: {out.resolve()}")

    _guard(body)


@app.command()
def report(
    run_id: str = typer.Option(..., "--run", help="The MLflow run whose report to rebuild."),
    config: Path = ConfigOpt,
    out: Path = typer.Option(
        Path("report.html"), "--out", "-o", help="The report file, or a folder that receives report.html."
    ),
) -> None:
    """Rebuild report.html from a past MLflow run's artifacts (the config names the tracking store)."""
    _start()

    def body():
        from flows.config import load_config
        from flows.review import rebuild_report

        cfg = load_config(config)
        path = rebuild_report(cfg, run_id, out.resolve())
        typer.echo(f"report: {path}")

    _guard(body)


@app.command()
def demo(
    out: Path = typer.Option(Path("data/demo"), "--out", "-o", help="Folder for the generated data."),
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

        from flows.demo import write_demo

        log = logging.getLogger("milestones")
        if fmt not in ("parquet", "csv"):
            _fail(f"--format: expected 'parquet' or 'csv', got {fmt!r}", 2)
        result = write_demo(out, n_accounts=accounts, seed=seed, fmt=fmt, progress=log.info)
        typer.echo(
            f"demo data: {result['n_accounts']} accounts, {result['n_events']} events in {out}"
        )

    _guard(body)


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
