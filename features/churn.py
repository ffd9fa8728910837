"""Churn derived from silence (``retention.churn: inactivity``), as Ibis expressions.

Many product-led and consumer products have no subscription end, only silence. Here an
account has churned at its last event when it then stays inactive longer than a gap ``G``:

- the gap is fitted to the product's own usage frequency (:func:`fit_inactivity_gap`): for a
  candidate gap ``G`` (7 to 365 days), among the accounts that were once silent for more than
  ``G`` full days (no event on any of the ``G`` days after an active day, all of them observed
  by ``as_of``), the *return rate* is the share that were active again afterwards; ``G`` is the
  smallest candidate whose return rate is at most :data:`DEFAULT_MAX_RETURN_RATE` (5 %), among
  candidates with at least ``min_silent_accounts`` silent accounts. When no candidate gets
  there, the largest one (365 days) is used and :attr:`InactivityChurn.reached_target` is
  False. A gap set in the configuration replaces the fit (the curve is still reported);
- ``churned_at`` (:func:`derive_churned_at`) is midnight after the account's last active day
  (UTC), for an account whose last active day is more than ``G`` days before ``as_of``'s date;
  null (a live customer) when the account was active within the last ``G`` days;
- an account with no event at all churned at ``signup_at + G`` when it signed up more than
  ``G`` days before ``as_of``; it is live before that (a new account gets the same grace as
  an active one).

Point in time: the derived labels use events up to ``as_of``. A snapshot's label ("still a
customer ``horizon_days`` later") then depends on the silence after that later date, which is
fine: labels are only trained on uncensored rows, whose label date is before ``as_of``, and an
account that churned before it stays churned. An account whose last event lies within ``G``
days of ``as_of`` cannot be labelled churned yet (it is live), so the share of churners near
the end of the history is understated by at most ``G`` days' worth.

Active days are one row per (account, UTC day) computed in the engine; only the histograms of
gaps (at most 367 rows each) reach pandas.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.datatypes as idt
from ibis.expr.types import Table

from features.tables import materialise
from features.values import naive_utc

DEFAULT_MAX_RETURN_RATE = 0.05  # "few silent accounts ever return"
DEFAULT_MIN_SILENT_ACCOUNTS = 20  # a candidate gap needs this many silent accounts to judge
MIN_GAP_DAYS = 7
MAX_GAP_DAYS = 365


@dataclass(frozen=True)
class InactivityChurn:
    """How churn was derived from silence.

    Attributes
    ----------
    gap_days : int
        The silence (days) after which an account has churned.
    fitted : bool
        False when the gap was configured.
    max_return_rate : float
        The target return rate of the fit.
    return_rate : float or None
        The return rate at ``gap_days`` (None when no account was silent that long).
    reached_target : bool
        Whether the return rate at the gap is at most the target (a configured gap: whether
        it happens to be).
    curve : list of dict
        One per candidate gap: ``gap_days``, ``silent_accounts`` (once silent for more than
        that many days), ``returned_accounts`` (active again after such a silence) and
        ``return_rate`` (None when no account was silent that long).
    churned, live : int
        Accounts marked churned and live at ``as_of``.
    """

    gap_days: int
    fitted: bool
    max_return_rate: float
    return_rate: float | None
    reached_target: bool
    curve: list[dict] = field(default_factory=list)
    churned: int = 0
    live: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "inactivity",
            "gap_days": self.gap_days,
            "fitted": self.fitted,
            "max_return_rate": self.max_return_rate,
            "return_rate": self.return_rate,
            "reached_target": self.reached_target,
            "churned": self.churned,
            "live": self.live,
            "curve": [dict(point) for point in self.curve],
        }


def without_churn_column(accounts_raw: Table) -> Table:
    """The raw accounts with any ``churned_at`` replaced by an empty one (typed later)."""
    kept = accounts_raw.drop("churned_at") if "churned_at" in accounts_raw.columns else accounts_raw
    return kept.mutate(churned_at=ibis.null(idt.Timestamp()))


def active_days(events: Table, as_of: dt.datetime) -> Table:
    """One row per (account_id, day): the UTC days on which an account had an event."""
    ev = events.filter(
        events.account_id.notnull(),
        events.occurred_at <= ibis.literal(naive_utc(as_of), idt.Timestamp()),
    )
    return ev.select(account_id=ev.account_id, day=ev.occurred_at.date()).distinct()


def account_silences(days: Table, as_of: dt.datetime) -> Table:
    """Per account: ``last_day``, ``max_gap`` (the longest gap, in days, between consecutive
    active days; 0 with one active day) and ``final_gap`` (``as_of``'s date - ``last_day``).

    A gap of ``g`` days between two active days means ``g - 1`` full silent days; the account
    was silent for more than ``G`` days when ``g > G`` (and came back), or when
    ``final_gap > G`` (and, so far, did not).
    """
    w = ibis.window(group_by=days.account_id, order_by=days.day)
    gaps = days.mutate(gap=days.day.delta(days.day.lag().over(w), unit="day"))
    per = gaps.group_by("account_id").aggregate(
        last_day=gaps.day.max(), max_gap=gaps.gap.max().fill_null(0)
    )
    as_of_day = ibis.literal(naive_utc(as_of).date(), idt.date)
    return per.mutate(final_gap=as_of_day.delta(per.last_day, unit="day"))


def _histogram(values, cap: int) -> dict[int, int]:
    """Counts of ``min(value, cap)``: a small query, fetched as a dict."""
    capped = ibis.least(values, cap).name("v")
    table = capped.as_table().group_by("v").aggregate(n=ibis._.count()).to_pyarrow()
    return dict(zip(table.column("v").to_pylist(), table.column("n").to_pylist(), strict=True))


def return_curve(
    silences: Table, gaps: range = range(MIN_GAP_DAYS, MAX_GAP_DAYS + 1)
) -> list[dict]:
    """The return rate as a function of the gap, from :func:`account_silences`.

    For a gap ``G``: ``silent_accounts`` once silent for more than ``G`` days (a gap or the
    final silence above ``G``), ``returned_accounts`` active again after such a silence (a gap
    above ``G``), and their ratio.
    """
    cap = max(gaps) + 1
    returned = _histogram(silences.max_gap, cap)
    silent = _histogram(ibis.greatest(silences.max_gap, silences.final_gap), cap)

    def above(hist: dict[int, int], g: int) -> int:
        return sum(n for v, n in hist.items() if v is not None and v > g)

    curve = []
    for g in gaps:
        s, r = above(silent, g), above(returned, g)
        curve.append(
            {
                "gap_days": g,
                "silent_accounts": s,
                "returned_accounts": r,
                "return_rate": (r / s) if s else None,
            }
        )
    return curve


def pick_gap(
    curve: list[dict],
    max_return_rate: float = DEFAULT_MAX_RETURN_RATE,
    min_silent_accounts: int = DEFAULT_MIN_SILENT_ACCOUNTS,
) -> tuple[int, bool]:
    """The smallest gap whose return rate is at most the target (with enough silent accounts
    to judge), and True; else the largest candidate and False."""
    for point in curve:
        rate = point["return_rate"]
        enough = point["silent_accounts"] >= min_silent_accounts
        if rate is not None and enough and rate <= max_return_rate:
            return point["gap_days"], True
    return curve[-1]["gap_days"], False


def derive_churned_at(
    accounts: Table, silences: Table, *, as_of: dt.datetime, gap_days: int
) -> Table:
    """The accounts with ``churned_at`` derived from silence (see the module's rules).

    The column keeps its place and type (naive UTC timestamp); every other column is kept.
    """
    as_of = naive_utc(as_of)
    cutoff_day = as_of.date() - dt.timedelta(days=gap_days)  # last_day before it: churned
    cutoff_ts = ibis.literal(as_of - dt.timedelta(days=gap_days), idt.Timestamp())
    last = silences.select(_ms_aid=silences.account_id, _ms_last=silences.last_day)
    joined = accounts.left_join(last, accounts.account_id == last._ms_aid)
    after_last = (joined._ms_last + ibis.interval(days=1)).cast(idt.Timestamp())
    after_signup = (joined.signup_at + ibis.interval(days=gap_days)).cast(idt.Timestamp())
    churned_at = ibis.cases(
        (
            joined._ms_last.notnull() & (joined._ms_last < ibis.literal(cutoff_day, idt.date)),
            after_last,
        ),
        (joined._ms_last.isnull() & (joined.signup_at < cutoff_ts), after_signup),
        else_=ibis.null(idt.Timestamp()),
    )
    return joined.select(
        *[churned_at.name(c) if c == "churned_at" else joined[c] for c in accounts.columns]
    )


def derive_inactivity_churn(
    con,
    accounts: Table,
    events: Table,
    *,
    as_of: dt.datetime,
    gap_days: int | None = None,
    max_return_rate: float = DEFAULT_MAX_RETURN_RATE,
    min_silent_accounts: int = DEFAULT_MIN_SILENT_ACCOUNTS,
) -> tuple[Table, InactivityChurn]:
    """Typed accounts with ``churned_at`` derived from the typed events' silence.

    Parameters
    ----------
    con : ibis backend
        The inputs' backend; the per-account silences and the derived accounts are computed
        once in it (temporary tables on DuckDB, cached on Spark).
    accounts, events : Table
        ``features.io.typed_accounts`` and ``typed_events``; any ``churned_at`` of the
        accounts is replaced.
    as_of : datetime
        The run's scoring date (naive UTC); later events are left out.
    gap_days : int, optional
        A configured gap; None fits it (:func:`pick_gap` on :func:`return_curve`).

    Returns
    -------
    (Table, InactivityChurn)
        The accounts, ready for the rest of the pipeline, and how churn was derived.
    """
    silences = materialise(
        con, "ms_churn_silences", account_silences(active_days(events, as_of), as_of)
    )
    curve = return_curve(silences)
    fitted = gap_days is None
    if fitted:
        gap_days, reached = pick_gap(curve, max_return_rate, min_silent_accounts)
    at_gap = next((p for p in curve if p["gap_days"] == gap_days), None)
    if at_gap is None:  # a configured gap outside the candidates: its own point
        at_gap = return_curve(silences, range(gap_days, gap_days + 1))[0]
    rate = at_gap["return_rate"]
    if not fitted:
        reached = rate is not None and rate <= max_return_rate
    derived = materialise(
        con,
        "ms_accounts_churn",
        derive_churned_at(accounts, silences, as_of=as_of, gap_days=gap_days),
    )
    counts = derived.aggregate(
        churned=derived.churned_at.notnull().sum(), total=derived.count()
    ).to_pyarrow()
    churned = int(counts.column("churned")[0].as_py() or 0)
    total = int(counts.column("total")[0].as_py() or 0)
    return derived, InactivityChurn(
        gap_days=int(gap_days),
        fitted=fitted,
        max_return_rate=max_return_rate,
        return_rate=rate,
        reached_target=bool(reached),
        curve=curve,
        churned=churned,
        live=total - churned,
    )
