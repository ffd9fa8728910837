"""The shape of a real event log, for the benchmark of issue 12 (points 4 and 5).

A real analytics export carries thousands of distinct event names: page and screen views,
case variants of one action ("Invoice Sent", "invoice_sent", "INVOICE_SENT"), names with
spaces, quotes and non-ASCII text. This module takes the demo data of ``bench/run.py``
(``features.demo.write_demo``, cached in ``bench/data/<size>/``) and relabels, in one DuckDB
pass, every event that ``configs/demo.yaml`` does not name (the demo's noise, niche and
table-stakes events) into a long tail of names drawn from a Zipf distribution:

- ``bench/data/real-<size>-3000/``: 3,000 distinct names in all (the 24 configured ones kept
  intact, 2,976 tail names);
- ``bench/data/real-<size>-50/``: the same rows with the tail names folded onto 26 of them
  (50 names in all, same event count): the twin that the 3,000-name run is timed against.

Each row's tail name depends only on its row number in the demo file and the seed (a hash),
so the files are the same from one generation to the next, and the 50-name file is the
3,000-name file with each tail name ``rank r`` replaced by the tail name of rank
``(r - 1) % 26 + 1``. Both folders hold a ``meta.json`` in the format of ``bench/run.py``
(the accounts file is the demo's own).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

NAMES_TOTAL = 3000
FOLDED_TOTAL = 50
ZIPF_S = 1.0
SEED = 12
BUCKET_BITS = 20  # the Zipf draw's resolution: 2**-20, under a tenth of the rarest name's share

# ----------------------------------------------------------------------------- names

_OBJECTS = (
    "invoice", "report", "dashboard", "ticket", "contact", "company", "deal", "note",
    "file", "comment", "article", "campaign", "segment", "audience", "form", "survey",
    "export", "import", "integration", "webhook", "api key", "subscription", "plan", "coupon",
    "payment", "refund", "order", "cart", "product", "catalog", "message", "thread",
    "channel", "team", "member", "role", "permission", "password", "profile", "avatar",
    "notification", "reminder", "task", "project", "milestone", "sprint", "board", "card",
    "label", "filter", "view", "search", "template", "snippet", "signature", "calendar",
    "meeting", "call", "recording", "transcript",
)  # fmt: skip
_VERBS = (
    "created", "updated", "deleted", "viewed", "sent", "opened", "closed", "shared",
    "exported", "archived", "restored", "assigned", "renamed", "duplicated", "downloaded",
)  # fmt: skip
_SECTIONS = (
    "settings", "billing", "reports", "inbox", "contacts", "companies", "help", "admin",
    "integrations", "automation", "analytics", "team", "profile", "onboarding", "search",
)  # fmt: skip
_PAGES = (
    "overview", "general", "members", "security", "notifications", "api", "webhooks",
    "invoices", "plans", "usage", "export", "import", "audit-log", "sso", "branding",
    "languages", "tags", "fields", "rules", "schedules", "templates", "history",
)  # fmt: skip
# Names as real exports hold them: quotes, spaces, punctuation, non-ASCII, markup, SQL,
# formulas and the table's own column names.
_ODD = (
    'Clicked "Upgrade now"', "Button 'Save' clicked", "it's done", "back`tick pressed",
    " Invoice Sent", "Invoice  Sent", "Invoice Sent ", "invoice sent", "InvoiceSent",
    "Rechnung gesendet", "facture envoyée", "請求書を送信しました", "отчёт открыт",
    "informe exportado ✓", "🎉 onboarding complete", "👍", "café ouvert", "naïve mode on",
    "screen_view:Settings › Billing", "screen_view:Réglages", "a,b;c", "path/to/page",
    "C:\\temp\\export.csv", "<b>bold</b>", "<script>alert(1)</script>", "a &amp; b",
    "'; DROP TABLE events; --", "1 OR 1=1", "=SUM(A1:A9)", "+cmd", "count", "event",
    "account_id", "occurred_at", "user_id", "retained", "null", "NULL", "NaN", "-", "1",
    "x" * 300,
)  # fmt: skip
# The action whose spellings the issue names: pinned at frequent ranks so that every one of
# them is used by enough accounts to be judged as a feature of its own.
_INVOICE = {3: "Invoice Sent", 9: "invoice_sent", 27: "INVOICE_SENT"}


def _spellings(verb: str, obj: str) -> list[str]:
    words = f"{obj} {verb}".split()
    return [
        " ".join(w.capitalize() for w in words),  # Report Viewed
        "_".join(words),  # report_viewed
        "_".join(words).upper(),  # REPORT_VIEWED
        words[0] + "".join(w.capitalize() for w in words[1:]),  # reportViewed
        ".".join(words),  # report.viewed
        "-".join(words),  # report-viewed
    ]


def tail_names(count: int, configured: set[str] | frozenset[str], seed: int = SEED) -> list[str]:
    """``count`` distinct event names, none of them ``configured``, by Zipf rank (the first
    is the most frequent). Deterministic in ``seed``."""
    rng = random.Random(seed)
    pool: list[str] = []
    for obj in _OBJECTS:
        for verb in _VERBS:
            forms = _spellings(verb, obj)
            # a third of the actions come in case and separator variants, the rest in one
            pool += rng.sample(forms, 3) if rng.random() < 1 / 3 else [rng.choice(forms)]
    for sec in _SECTIONS:
        for page in _PAGES:
            pool.append(f"page_view:/{sec}/{page}")
            if rng.random() < 0.3:
                pool.append(f"page_view:/{sec}/{page}?tab={rng.randint(1, 9)}")
    pool += [f"page_view:/reports/{k}" for k in rng.sample(range(1000, 99999), 1200)]
    pool += [f"screen_view:{s.capitalize()} / {p}" for s in _SECTIONS[:8] for p in _PAGES[:10]]
    pool += list(_ODD)
    taken = set(configured) | set(_INVOICE.values())
    unique = [n for n in dict.fromkeys(pool) if n not in taken]
    rng.shuffle(unique)  # odd spellings and page views anywhere from the head to the tail
    if len(unique) < count - len(_INVOICE):
        raise ValueError(f"only {len(unique)} generated names, {count} asked for")
    names = unique[: count - len(_INVOICE)]
    for rank, name in sorted(_INVOICE.items()):
        if rank <= count:
            names.insert(rank - 1, name)
    return names[:count]


def _bucket_ranks(n_names: int, n_fold: int, s: float = ZIPF_S):
    """Zipf rank (0-based) of each of the ``2**BUCKET_BITS`` buckets of a uniform draw, and
    its folded rank, as one row of two lists (``rank``, ``folded``)."""
    import numpy as np
    import pyarrow as pa

    weights = 1.0 / np.arange(1, n_names + 1, dtype=float) ** s
    cdf = np.cumsum(weights) / weights.sum()
    n = 1 << BUCKET_BITS
    u = (np.arange(n, dtype=float) + 0.5) / n
    rank = np.minimum(np.searchsorted(cdf, u, side="right"), n_names - 1).astype(np.int32)
    lists = pa.list_(pa.int32())
    return pa.table(
        {
            "rank": pa.array([rank], lists),
            "folded": pa.array([(rank % n_fold).astype(np.int32)], lists),
        }
    )


def configured_events(params: dict[str, Any]) -> list[str]:
    """The events ``configs/demo.yaml`` names (kept intact by the relabelling)."""
    cats = [f for feats in params["categories"].values() for f in feats]
    named = [*params["setup_steps"], params["activation_event"], params["utilization_event"]]
    return list(dict.fromkeys([*named, *cats]))


def names_digest(configured: list[str]) -> str:
    """A digest of everything that decides the relabelled files: the names, their ranks, the
    seed, the Zipf exponent and the folding (a cached file with another digest is rebuilt)."""
    import hashlib

    names = tail_names(NAMES_TOTAL - len(configured), set(configured), SEED)
    key = [configured, names, SEED, ZIPF_S, FOLDED_TOTAL, BUCKET_BITS]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]


def relabel(
    base_events: str,
    out_dir: Path,
    configured: list[str],
    *,
    n_names: int = NAMES_TOTAL,
    n_folded: int = FOLDED_TOTAL,
    seed: int = SEED,
    threads: int | None = None,
    memory_limit: str = "4GB",
) -> dict[str, Any]:
    """Write ``events-<n_names>.parquet`` and ``events-<n_folded>.parquet`` into ``out_dir``.

    Returns the paths, the tail names and the counts (events, distinct names) of each file.
    """
    import duckdb
    import pyarrow as pa

    tail_count = n_names - len(configured)
    fold_count = n_folded - len(configured)
    names = tail_names(tail_count, set(configured), seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute("SET enable_progress_bar=false")
    # The draw: a row's hash picks a bucket, the bucket a Zipf rank (two constant lists,
    # read once by scalar subqueries: no join, so the rows keep the demo file's order).
    ranks = _bucket_ranks(tail_count, fold_count)
    con.register("ranks_arrow", ranks)
    con.register("names_arrow", pa.table({"names": pa.array([names], pa.list_(pa.string()))}))
    con.execute("CREATE TEMP TABLE ranks AS SELECT * FROM ranks_arrow")
    con.execute("CREATE TEMP TABLE tail AS SELECT * FROM names_arrow")
    keep = ", ".join("'" + e.replace("'", "''") + "'" for e in configured)
    mask = (1 << BUCKET_BITS) - 1
    files: dict[str, Any] = {}
    for total, col in ((n_names, "rank"), (n_folded, "folded")):
        path = out_dir / f"events-{total}.parquet"
        tmp = path.with_name(path.name + ".tmp")
        t0 = time.perf_counter()
        bucket = f"(hash(e.file_row_number, {int(seed)}) & {mask})::BIGINT + 1"
        con.execute(
            f"""
            COPY (
                SELECT e.account_id,
                       CASE WHEN e.event IN ({keep}) THEN e.event
                            ELSE (SELECT names FROM tail)[(SELECT {col} FROM ranks)[{bucket}] + 1]
                       END AS event,
                       e.occurred_at, e.quantity, e.user_id
                FROM read_parquet('{base_events}', file_row_number = true) e
            ) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576)
            """
        )
        tmp.replace(path)
        n_ev, n_names_seen = con.execute(
            f"SELECT count(*), count(DISTINCT event) FROM read_parquet('{path}')"
        ).fetchone()
        files[str(total)] = {
            "events": str(path.resolve()),
            "n_events": int(n_ev),
            "distinct_names": int(n_names_seen),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    con.close()
    return {"files": files, "tail_names": names, "configured": configured}


def ensure_real(
    base_meta: dict[str, Any], data_root: Path, params: dict[str, Any], log, threads=None
) -> dict[str, dict[str, Any]]:
    """The 3,000-name and 50-name logs built from one demo size (cached): ``{"3000": meta,
    "50": meta}``, each meta in the format of ``bench/run.py`` (``accounts``, ``events``,
    ``as_of``, ``snapshot_dates`` ...) with the names' figures added."""
    label = base_meta["label"]
    work = data_root / f"real-{label}"
    folders = {str(t): data_root / f"real-{label}-{t}" for t in (NAMES_TOTAL, FOLDED_TOTAL)}
    configured = configured_events(params)
    digest = names_digest(configured)
    metas = {}
    for total, folder in folders.items():
        path = folder / "meta.json"
        if path.exists():
            meta = json.loads(path.read_text())
            if (
                meta.get("base_events_bytes") == base_meta["events_bytes"]
                and meta.get("names_digest") == digest
                and Path(meta["events"]).exists()
            ):
                metas[total] = meta
    if len(metas) == len(folders):
        return metas
    log(
        f"relabelling {label} ({base_meta['n_events']:,} events): the noise events over "
        f"{NAMES_TOTAL:,} and {FOLDED_TOTAL} names in all"
    )
    t0 = time.perf_counter()
    made = relabel(base_meta["events"], work, configured, threads=threads)
    (work / "tail_names.json").write_text(
        json.dumps(made["tail_names"], ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    import duckdb

    share = (
        duckdb.connect()
        .execute(
            f"SELECT avg(CASE WHEN event IN ({', '.join(repr(e) for e in configured)}) THEN 0.0 "
            f"ELSE 1.0 END) FROM read_parquet('{base_meta['events']}')"
        )
        .fetchone()[0]
    )
    for total, folder in folders.items():
        f = made["files"][total]
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            **base_meta,
            "generator": f"{base_meta['generator']} + bench.real_data (relabelled)",
            "label": f"real-{label}-{total}",
            "base_label": label,
            "base_events_bytes": base_meta["events_bytes"],
            "events": f["events"],
            "n_events": f["n_events"],
            "distinct_names": f["distinct_names"],
            "configured_names": len(configured),
            "tail_names": int(total) - len(configured),
            "tail_share_of_events": round(float(share), 4),
            "zipf_s": ZIPF_S,
            "seed": SEED,
            "names_digest": digest,
            "events_bytes": Path(f["events"]).stat().st_size,
            "relabel_seconds": f["seconds"],
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        metas[total] = meta
        log(f"  {total} names: {f['n_events']:,} events, {f['distinct_names']:,} distinct names")
    log(f"  relabelled in {time.perf_counter() - t0:.1f}s")
    return metas
