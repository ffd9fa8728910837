"""Great Expectations as the runner of the validation rules on DuckDB.

A rule of :mod:`features.validation` is an Ibis expression of the rows that break it. Here
each one is compiled to SQL and checked by Great Expectations as an
``UnexpectedRowsExpectation``, one suite per table, on a SQL data source that shares the very
DuckDB connection the tables were read with: the files are scanned by DuckDB and never copied
into pandas. GE reads each table as a table asset, so a table must have a name in that
connection (a materialised table, or a view from :func:`temporary_views`).

- :func:`quiet`: no DuckDB progress bar while validation runs.
- :func:`temporary_views`: named temporary views (and small tables) for the rules to read.
- :func:`run_expectations`: every rule's count of broken rows and the first few of them.
- :func:`collecting_results` and :func:`write_data_docs`: GE's suites and results of the rules
  run inside the block, rendered as GE's data docs (HTML) into a folder.

GE reaches a database through SQLAlchemy; the "lent connection" dialect at the end of this
module hands SQLAlchemy the backend's own DuckDB connection.
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ibis.expr.types import Table

_BATCH_CTE = "gx_batch"
_PREFIX = "_milestones_validate"
# (suite, result) pairs of the suites validated while :func:`collecting_results` is open
_COLLECTED: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "milestones_ge_results", default=None
)


class UnexpectedRows(Protocol):
    """What the runner needs of a rule (the rules of :mod:`features.validation` have it)."""

    @property
    def rule(self) -> str: ...

    @property
    def table(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def unexpected(self) -> Table: ...


@contextlib.contextmanager
def quiet(con) -> Iterator[None]:
    """DuckDB draws a progress bar on stderr for queries of more than 2 s: not in validation."""
    # fetchall: DuckDB refuses other work while a result is left half-read
    previous = con.raw_sql("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]
    con.raw_sql("SET enable_progress_bar = false")
    try:
        yield
    finally:
        con.raw_sql(f"SET enable_progress_bar = {'true' if previous else 'false'}")


@contextlib.contextmanager
def temporary_views(
    con,
    views: Mapping[str, Table],
    text_tables: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> Iterator[dict[str, Table]]:
    """Temporary named views and tables on ``con``'s DuckDB, dropped on exit.

    Parameters
    ----------
    con : ibis backend
        A DuckDB backend.
    views : mapping
        Name -> an Ibis expression on ``con``; each becomes a temporary view.
    text_tables : mapping, optional
        Name -> ``{column: values}`` of strings; each becomes a temporary table (an in-memory
        Ibis table would not exist in the connection when GE runs the compiled SQL).

    Yields
    ------
    dict
        Name -> the Ibis table reading the view or table (its ``get_name()`` is the SQL name).
    """
    suffix = uuid.uuid4().hex[:8]
    created: list[tuple[str, str]] = []
    tables: dict[str, Table] = {}
    try:
        for name, expr in views.items():
            sql_name = f"{_PREFIX}_{name}_{suffix}"
            con.raw_sql(f'CREATE OR REPLACE TEMP VIEW "{sql_name}" AS {con.compile(expr)}')
            created.append(("VIEW", sql_name))
            tables[name] = con.table(sql_name)
        for name, columns in (text_tables or {}).items():
            sql_name = f"{_PREFIX}_{name}_{suffix}"
            spec = ", ".join(f'"{c}" VARCHAR' for c in columns)
            con.raw_sql(f'CREATE OR REPLACE TEMP TABLE "{sql_name}" ({spec})')
            created.append(("TABLE", sql_name))
            rows = [[str(v) for v in row] for row in zip(*columns.values(), strict=True)]
            if rows:
                marks = ", ".join("?" for _ in columns)
                con.con.executemany(f'INSERT INTO "{sql_name}" VALUES ({marks})', rows)
            tables[name] = con.table(sql_name)
        yield tables
    finally:
        for kind, sql_name in reversed(created):
            con.raw_sql(f'DROP {kind} IF EXISTS "{sql_name}"')


def run_expectations(
    con, tables: Mapping[str, str], rules: Sequence[UnexpectedRows]
) -> dict[str, tuple[int, list[dict]]]:
    """Check the rules as GE suites (one per table) on a SQL data source over ``con``'s DuckDB.

    Parameters
    ----------
    con : ibis backend
        The DuckDB backend the rules' expressions are bound to.
    tables : mapping
        Rule table (``rule.table``) -> the SQL name of the table or view GE validates; a rule's
        expression reads that table (and may join the others by name).
    rules : sequence
        The rules, each with ``rule``, ``table``, ``description`` and ``unexpected``.

    Returns
    -------
    dict
        Rule identifier -> (number of broken rows, the first of them as dicts, up to 200).

    Raises
    ------
    RuntimeError
        When GE could not run a rule's query.
    """
    queries = {r.rule: _batch_query(con.compile(r.unexpected), tables[r.table]) for r in rules}
    outcomes = _great_expectations(con, tables, rules, queries)
    results = {}
    for rule in rules:
        outcome = outcomes[rule.rule]
        rows = (outcome.get("details") or {}).get("unexpected_rows") or []
        results[rule.rule] = (int(outcome["observed_value"]), [dict(row) for row in rows])
    return results


def _batch_query(sql: str, view: str) -> str:
    """The rule's SQL for Great Expectations, reading its own table from GE's ``{batch}``.

    GE substitutes ``{batch}`` with a subquery (aliased or not, depending on whether the query
    joins), which cannot take the place of Ibis's ``"view" AS "t0"``; so the batch becomes a
    common table expression that the Ibis SQL reads in place of the view. Literal braces are
    doubled, as GE formats the query with ``str.format``.
    """
    sql = sql.replace("{", "{{").replace("}", "}}").replace(f'"{view}"', f'"{_BATCH_CTE}"')
    head = f'WITH "{_BATCH_CTE}" AS (SELECT * FROM {{batch}})'
    stripped = sql.lstrip()
    if stripped[:5].upper() == "WITH ":
        return f"{head}, {stripped[5:]}"
    return f"{head} {stripped}"


def _great_expectations(
    con,
    views: Mapping[str, str],
    rules: Sequence[UnexpectedRows],
    queries: Mapping[str, str],
) -> dict[str, dict]:
    """Run the rules as GE suites (one per table) on a SQL data source over ``con``'s DuckDB."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    url = _register_lent_dialect()
    # GE keeps its last context (and so this data source) reachable globally: the creator reads
    # the connection from a holder that is emptied afterwards, and the pools are disposed, so
    # that nothing of GE keeps the backend's connection once validation returns
    lent = [con.con]
    context = gx.get_context(
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
        mode="ephemeral",
    )
    source = None
    outcomes: dict[str, dict] = {}
    try:
        source = context.data_sources.add_sql(
            name="milestones_inputs",
            connection_string=url,
            kwargs={"creator": lambda: _LentConnection(lent[0])},
        )
        for table in views:
            table_rules = [r for r in rules if r.table == table]
            if table_rules:
                outcomes.update(
                    _validate_table(gx, context, source, table, views[table], table_rules, queries)
                )
    finally:
        if source is not None:
            source.get_engine().dispose()
            source.get_execution_engine().close()
        lent.clear()
    return outcomes


def _validate_table(
    gx,
    context,
    source,
    table: str,
    view: str,
    rules: Sequence[UnexpectedRows],
    queries: Mapping[str, str],
) -> dict[str, dict]:
    """One table's rules as one GE suite, validated on a whole-table batch of its view."""
    asset = source.add_table_asset(name=table, table_name=view)
    batch = asset.add_batch_definition_whole_table(name=f"{table}_all")
    expectations = [
        gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=queries[rule.rule],
            description=rule.description,
            meta={"rule": rule.rule},
        )
        for rule in rules
    ]
    suite = context.suites.add(
        gx.ExpectationSuite(name=f"{table}_contract", expectations=expectations)
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{table}_contract", data=batch, suite=suite)
    )
    # COMPLETE: the first rows of each rule's query (up to 200) come back as examples
    run = definition.run(result_format={"result_format": "COMPLETE"})
    collected = _COLLECTED.get()
    if collected is not None:
        collected.append((table, suite, run))
    outcomes = {}
    for result in run.results:
        rule_id = result.expectation_config.meta["rule"]
        error = _exception_message(result.exception_info or {})
        if error is not None:
            raise RuntimeError(f"validation rule {rule_id} could not run: {error}")
        outcomes[rule_id] = result.result
    return outcomes


@contextlib.contextmanager
def collecting_results() -> Iterator[list]:
    """Collect GE's ``(table, suite, result)`` of every suite validated inside the block.

    The list yielded fills as :func:`run_expectations` runs; give it to :func:`write_data_docs`.
    """
    collected: list = []
    token = _COLLECTED.set(collected)
    try:
        yield collected
    finally:
        _COLLECTED.reset(token)


# GE copies its site assets beside the pages: fonts and animated tutorials (4 MB) the pages do
# not need (they fall back to the browser's fonts); the style sheets and the icon stay
_UNNEEDED_ASSETS = ("static/fonts", "static/images")


def write_data_docs(folder: str | Path, collected: Sequence[tuple[str, Any, Any]]) -> Path:
    """GE's data docs (HTML) of the collected suites and results, written into ``folder``.

    Parameters
    ----------
    folder : path
        The site's folder (created; an existing site there is replaced).
    collected : sequence
        ``(table, suite, result)`` as :func:`collecting_results` gathers them.

    Returns
    -------
    Path
        The site's ``index.html``: one page per suite (its expectations) and per validation
        result (each rule, passed or not, its count of broken rows and examples).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(folder),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    context = gx.get_context(
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            data_docs_sites={"milestones": site},
        ),
        mode="ephemeral",
    )
    for table, suite, result in collected:
        fields = suite.to_json_dict()
        context.suites.add(
            gx.ExpectationSuite(
                name=fields["name"], expectations=fields["expectations"], meta=fields.get("meta")
            )
        )
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=fields["name"]),
            run_id=result.meta["run_id"],
            batch_identifier=table,
        )
        context.validation_results_store.set(key, result)
    context.build_data_docs()
    for assets in _UNNEEDED_ASSETS:
        shutil.rmtree(folder / assets, ignore_errors=True)
    return folder / "index.html"


def _exception_message(info: dict) -> str | None:
    """The message of the exception GE caught while running an expectation, if any."""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error")
    return None


# --------------------------------------------------------------------------- DuckDB for GE
#
# GE reaches a database through SQLAlchemy. The rules must run on the backend's own DuckDB
# connection (its temporary views, session time zone and attached databases), so SQLAlchemy
# gets that connection lent through a minimal DB-API shim and dialect: it never closes the
# connection and never opens a transaction on it (a rollback when SQLAlchemy takes the
# connection back would discard the result GE has still to fetch). The dialect compiles
# SQLAlchemy's generic SQL, which DuckDB reads; the rules themselves are DuckDB SQL from Ibis.

_LENT_DIALECT = "duckdb.milestones_lent"


class _LentCursor:
    """A DB-API cursor over the lent DuckDB connection (DuckDB keeps one result at a time)."""

    arraysize = 1
    rowcount = -1

    def __init__(self, duck: Any) -> None:
        self._duck = duck

    def execute(self, operation: str, parameters: Any = None) -> None:
        if parameters:
            self._duck.execute(operation, list(parameters))
        else:
            self._duck.execute(operation)

    @property
    def description(self) -> Any:
        return self._duck.description

    def fetchone(self) -> Any:
        return self._duck.fetchone()

    def fetchmany(self, size: int | None = None) -> list:
        return self._duck.fetchmany(size or self.arraysize)

    def fetchall(self) -> list:
        return self._duck.fetchall()

    def close(self) -> None:
        pass


class _LentConnection:
    """A DB-API connection that lends the backend's DuckDB connection and never closes it."""

    def __init__(self, duck: Any) -> None:
        self._duck = duck

    def cursor(self) -> _LentCursor:
        return _LentCursor(self._duck)

    def close(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


def _register_lent_dialect() -> str:
    """Register the SQLAlchemy dialect of the lent connection (once); return its URL."""
    from sqlalchemy.dialects import registry

    # SQLAlchemy's registry loads a dialect by module and attribute name; the class is built
    # on first use so that importing this module does not import SQLAlchemy
    if "_LentDuckDBDialect" not in globals():
        globals()["_LentDuckDBDialect"] = _build_lent_dialect()
        registry.register(_LENT_DIALECT, __name__, "_LentDuckDBDialect")
    return _LENT_DIALECT.replace(".", "+") + "://"


def _build_lent_dialect() -> type:
    import duckdb
    from sqlalchemy.engine.default import DefaultDialect

    class DBAPI:
        """The DB-API module SQLAlchemy expects: a parameter style and the error classes."""

        apilevel = "2.0"
        threadsafety = 1
        paramstyle = "qmark"
        Warning = duckdb.Warning
        Error = duckdb.Error
        InterfaceError = duckdb.Error
        DatabaseError = duckdb.DatabaseError
        DataError = duckdb.DataError
        OperationalError = duckdb.OperationalError
        IntegrityError = duckdb.IntegrityError
        InternalError = duckdb.InternalError
        ProgrammingError = duckdb.ProgrammingError
        NotSupportedError = duckdb.NotSupportedError

    class LentDuckDBDialect(DefaultDialect):
        name = "duckdb"
        driver = "milestones_lent"
        supports_statement_cache = True
        supports_native_boolean = True
        default_paramstyle = "qmark"

        @classmethod
        def import_dbapi(cls) -> Any:
            return DBAPI

        def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
            return tuple(int(p) for p in duckdb.__version__.split(".")[:3] if p.isdigit())

        def _get_default_schema_name(self, connection: Any) -> str:
            return "main"

        def get_default_isolation_level(self, dbapi_conn: Any) -> None:
            return None

        def do_begin(self, dbapi_connection: Any) -> None:
            pass

        def do_commit(self, dbapi_connection: Any) -> None:
            pass

        def do_rollback(self, dbapi_connection: Any) -> None:
            pass

        def has_table(
            self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
        ) -> bool:
            found = connection.exec_driver_sql(
                "SELECT 1 FROM duckdb_tables() WHERE table_name = ? "
                "UNION ALL SELECT 1 FROM duckdb_views() WHERE view_name = ?",
                (table_name, table_name),
            )
            return found.first() is not None

    return LentDuckDBDialect
