"""Writing the demo to files: ``accounts``, ``events`` (Parquet or CSV) and ``truth.json``.

Events stream to disk in chunks while the simulation runs (one background thread encodes
and writes), every file is written under a temporary name and renamed into place once all
are complete, so a failed run leaves no partial demo behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.demo.simulate import EVENT_SCHEMA, TS, plain_events, simulate
from features.demo.world import BLOCK, DAY, DEMO_ACCOUNTS, check_args, check_options, truth_dict


def write_demo(
    out_dir: str | os.PathLike,
    n_accounts: int = DEMO_ACCOUNTS,
    seed: int = 0,
    fmt: Literal["parquet", "csv"] = "parquet",
    end: str = "2026-06-30",
    months: int = 24,
    progress: Callable[[str], None] | None = None,
    effect: str = "planted",
    names: str = "standard",
) -> dict:
    """Write ``accounts.<fmt>``, ``events.<fmt>`` and ``truth.json`` into ``out_dir``.

    Events stream to disk in chunks (bounded memory); every file is written under a temporary
    name and renamed into place once all are complete. ``effect`` and ``names`` are the
    generator options (see :func:`features.demo.generate_demo`); with their defaults the
    files are byte for byte those of earlier versions. With ``names="messy"`` CSV cells are
    quoted where needed (names hold commas, quotes and the like).

    Returns
    -------
    dict
        ``accounts``, ``events`` and ``truth`` (paths), ``n_accounts``, ``n_events``, ``seconds``.
    """
    check_args(n_accounts, months, seed)
    check_options(effect, names)
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = {
        "accounts": out / f"accounts.{fmt}",
        "events": out / f"events.{fmt}",
        "truth": out / "truth.json",
    }
    tag = f".tmp-{os.getpid()}"
    tmp = {k: p.with_name(p.name + tag) for k, p in final.items()}
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    n_events = 0
    account_tables: list[pa.Table] = []
    messy = names == "messy"
    writer = _EventWriter(tmp["events"], fmt, quote=messy)
    # One background thread encodes and writes while numpy generates the next chunk (both
    # release the GIL); a single worker keeps the chunks in order, so output stays identical.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-writer")
    writing: Future | None = None
    try:
        pending: list[pa.Table] = []
        pending_rows = 0
        n_blocks = -(-n_accounts // BLOCK)
        done_accounts = 0
        for what, item in simulate(
            n_accounts, seed, end, months, emit=True, effect=effect, names=names
        ):
            if what == "events":
                # the messy chunks come as plain strings: make every chunk plain to concat
                pending.append(plain_events(item) if messy else item)
                pending_rows += item.num_rows
                n_events += item.num_rows
                if pending_rows >= 1_000_000:
                    if writing is not None:
                        writing.result()
                    writing = pool.submit(writer.write, pa.concat_tables(pending))
                    pending, pending_rows = [], 0
            else:
                account_tables.append(item)
                done_accounts += item.num_rows
                secs = time.perf_counter() - t0
                say(
                    f"demo: block {len(account_tables)}/{n_blocks}: {done_accounts:,} accounts, "
                    f"{n_events:,} events, {secs:.1f}s ({n_events / max(secs, 1e-9):,.0f} events/s)"
                )
        if writing is not None:
            writing.result()
            writing = None
        if pending:
            writer.write(pa.concat_tables(pending))
        writer.close()
        accounts = pa.concat_tables(account_tables)
        if fmt == "parquet":
            pq.write_table(accounts, tmp["accounts"], store_schema=False)
        else:
            pacsv.write_csv(_csv_table(accounts), tmp["accounts"], _CSV_OPTIONS)
        truth = truth_dict(seed, n_accounts, end, months, effect, names)
        truth["n_events"] = int(n_events)
        tmp["truth"].write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
        for key in ("accounts", "events", "truth"):
            os.replace(tmp[key], final[key])
    except BaseException:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):  # the first error is the one raised
                writing.result()
        writer.abort()
        for p in tmp.values():
            p.unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True)
    secs = time.perf_counter() - t0
    say(f"demo: wrote {n_accounts:,} accounts and {n_events:,} events to {out} in {secs:.1f}s")
    return {
        "accounts": str(final["accounts"]),
        "events": str(final["events"]),
        "truth": str(final["truth"]),
        "n_accounts": int(n_accounts),
        "n_events": int(n_events),
        "seconds": round(secs, 3),
    }


# --------------------------------------------------------------------------------------
# Event files
# --------------------------------------------------------------------------------------


class _EventWriter:
    """Append event tables to one Parquet file (row groups) or one CSV file."""

    def __init__(self, path: Path, fmt: str, quote: bool = False):
        self.path, self.fmt = path, fmt
        self._options = _CSV_QUOTED if quote else _CSV_OPTIONS
        self._pq: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._sink = None
        if fmt == "parquet":
            self._pq = pq.ParquetWriter(
                path,
                EVENT_SCHEMA,
                compression="zstd",
                # dictionary pages for the repetitive columns only: hashing ~1M distinct
                # timestamps per row group would cost time for nothing
                use_dictionary=["account_id", "event", "user_id", "quantity"],
                store_schema=False,
            )
        else:
            self._sink = pa.OSFile(str(path), "wb")
            self._csv = pacsv.CSVWriter(
                self._sink, _csv_schema(EVENT_SCHEMA), write_options=self._options
            )

    def write(self, table: pa.Table) -> None:
        table = plain_events(table)
        if self._pq is not None:
            self._pq.write_table(table, row_group_size=1 << 20)
        else:
            self._csv.write_table(_csv_table(table))

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._csv is not None:
            self._csv.close()
            self._sink.close()
            self._csv = None

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # best effort while failing anyway
            self.close()


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            (f.name, pa.string() if f.type == TS or pa.types.is_floating(f.type) else f.type)
            for f in schema
        ]
    )


_TOD_STR: pa.Array | None = None


def _iso_strings(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """ISO 8601 strings (``2026-01-31T12:34:56Z``) of whole-second UTC timestamps, fast."""
    global _TOD_STR
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    valid = ts.is_valid()
    secs = ts.cast(pa.int64()).fill_null(0).to_numpy() // 1_000_000
    days = secs // DAY
    d0 = int(days.min()) if len(days) else 0
    span = int(days.max()) - d0 + 1 if len(days) else 1
    day_str = pa.array(
        np.datetime_as_string(np.arange(d0, d0 + span).astype("datetime64[D]"), unit="D")
    )
    if _TOD_STR is None:
        tod = np.arange(DAY)
        _TOD_STR = pa.array(
            [
                f"T{h:02d}:{m:02d}:{s:02d}Z"
                for h, m, s in zip(tod // 3600, tod // 60 % 60, tod % 60, strict=True)
            ]
        )
    out = pc.binary_join_element_wise(
        day_str.take(pa.array(days - d0)), _TOD_STR.take(pa.array(secs - days * DAY)), ""
    )
    return pc.if_else(valid, out, pa.scalar(None, pa.string()))


def _float_strings(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Decimal strings that read back as floats (``1.0``, not ``1``)."""
    text = pc.cast(values, pa.string())
    plain = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.if_else(plain, pc.binary_join_element_wise(text, ".0", ""), text)


def _csv_table(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 strings, floats with a decimal point (the CSV form)."""
    cols = []
    for c in table.columns:
        if c.type == TS:
            cols.append(_iso_strings(c))
        elif pa.types.is_floating(c.type):
            cols.append(_float_strings(c))
        else:
            cols.append(c)
    return pa.table(cols, schema=_csv_schema(table.schema))


# our strings never hold a comma, a quote or a line break, so nothing needs quoting
_CSV_OPTIONS = pacsv.WriteOptions(quoting_style="none")
# ... except the messy names (commas, quotes, HTML, emoji)
_CSV_QUOTED = pacsv.WriteOptions(quoting_style="needed")
