"""Column names shared by the feature tables, the models and the outputs.

Event names, setup steps and maturity categories are data, never identifiers: a column holds
the *code* of the name (:func:`code_of`), never the name itself. A name that is already a
plain lower-case identifier (``invoice_sent``: letters, digits and single underscores, at most
40 characters, not a reserved word) is its own code, which keeps the tables readable; any
other name (``Invoice Sent``, ``LOGIN``, ``<b>x</b>``, a 300-character name, ``count``) is
coded ``h`` and 16 hexadecimal digits of its BLAKE2b hash. A code depends on the name alone,
so it is the same in every run and for every data set (a champion model's columns stay valid
when new names appear), distinct names never share a code (:func:`name_lookup` checks), and
codes differ by more than case, so an engine whose identifiers ignore case (DuckDB) never
merges two names. The lookup from code to name travels with the tables
(``FeatureTables.names``) and turns a column back into its name (:func:`feature_of`).

Every column derived from one product feature (event) is named ``<code>__<kind>`` so that
the models can group all columns of one feature (``feature_of``). In the list below,
``<event>``, ``<step>`` and ``<category>`` stand for codes.

Tenure table (one row per account, anchored at signup; day index of an event is
``date(occurred_at) - date(signup_at)`` in days, "within W days" means day index in [0, W)):

- ``account_id``, ``signup_at``, ``churned_at``, ``plan``, ``seats`` and other account attributes
- ``setup__<step>``: bool, the step was done within ``setup.window_days``
- ``setup_window_closed``: bool, ``signup_date + setup.window_days <= as_of``
- ``activation_count``: int, activation events within ``activation.window_days``
- ``gw__<event>``: int, count in the first ``golden_week_days``
- ``aw__<event>``: int, count within the activation window
- ``ttf__<event>``: float, days from signup to first use within the activation window (null if none)
- ``window_end``: date, ``signup_date + activation.window_days``
- ``window_closed``: bool, ``window_end <= as_of``
- ``label_date``: date, ``window_end + horizon_days``
- ``labelled``: bool, a customer at ``window_end`` and ``label_date <= as_of``
- ``retained``: nullable int 0/1, a customer at ``label_date`` (null when not labelled)
- ``inactivity_labelled``: bool, a customer at ``window_end`` and
  ``window_end + inactivity_horizon_days <= as_of``
- ``went_inactive``: nullable int 0/1, some ``inactivity_period_days`` period of the
  ``inactivity_horizon_days`` after ``window_end`` has no activation event

Snapshot table (one row per account and snapshot date ``S``, a month end; the trailing window
of W days is the dates ``[S - W + 1, S]``; rows only for accounts that are customers at the end
of ``S`` and whose activation window has closed by then):

- ``account_id``, ``snapshot_date``, ``plan``, ``seats``, ``tenure_days`` and other attributes
- ``<event>__used`` (int 0/1), ``<event>__count`` (int), ``<event>__days`` (int, active days),
  ``<event>__per_seat`` (float), over the trailing ``trailing_days``
- ``utilization_rate``: utilization events per seat per ``period_days`` over its window
- ``utilization_raw``: the same without dividing by seats
- ``maturity__<category>``: int, distinct features of the category used in its window
- ``label_date``: ``S + horizon_days``; ``censored``: ``label_date > as_of``
- ``retained``: nullable int 0/1, a customer at ``label_date`` (null when censored)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

SEP = "__"
FEATURE_KINDS = ("used", "count", "days", "per_seat")
ACCOUNT_KEY = "account_id"
SNAPSHOT_KEY = "snapshot_date"
LABEL = "retained"


TENURE_KINDS = ("gw", "aw", "ttf")
# Names that are never their own code: the words of the tables' columns and of the column
# prefixes and kinds, so that no code reads as another column's part.
RESERVED = frozenset(
    {
        *FEATURE_KINDS,
        *TENURE_KINDS,
        "setup",
        "setup_done",
        "maturity",
        "mature",
        "features",
        "event",
        "events",
        "account_id",
        "user_id",
        "occurred_at",
        "quantity",
        "signup_at",
        "signup_date",
        "churned_at",
        "seats",
        "plan",
        "snapshot_date",
        "tenure_days",
        "retained",
        "censored",
        "labelled",
        "label_date",
        "window_end",
        "window_closed",
        "activation_count",
        "utilization_rate",
        "utilization_raw",
        "aid",
        "code",
        "day",
        "n",
        "qty",
        "null",
        "true",
        "false",
        "select",
        "from",
        "where",
        "group",
        "order",
        "by",
        "table",
    }
)
_PLAIN = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_HASHED = re.compile(r"h[0-9a-f]{16}")
MAX_PLAIN = 40


def code_of(name: str) -> str:
    """The code of an event name, a setup step or a category: the column-safe stand-in for
    the name (see the module docstring). Deterministic, and the same for the same name in
    every run."""
    name = str(name)
    if (
        len(name) <= MAX_PLAIN
        and _PLAIN.fullmatch(name)
        and not _HASHED.fullmatch(name)
        and name not in RESERVED
    ):
        return name
    return "h" + hashlib.blake2b(name.encode("utf-8"), digest_size=8).hexdigest()


def name_lookup(*groups: Iterable[str]) -> dict[str, str]:
    """``{code: name}`` for every name of ``groups`` (events, steps, categories ...).

    Raises
    ------
    ValueError
        When two distinct names share a code (a 64-bit hash collision: never seen, but a
        silent merge of two features would be worse than a clear error).
    """
    out: dict[str, str] = {}
    for names in groups:
        for name in names:
            name = str(name)
            code = code_of(name)
            if out.setdefault(code, name) != name:
                raise ValueError(f"event names {out[code]!r} and {name!r} share the code {code!r}")
    return out


def feature_col(event: str, kind: str) -> str:
    """Name of the column of ``event`` (a name) of the given kind (``used``, ``count`` ...)."""
    return f"{code_of(event)}{SEP}{kind}"


def tenure_col(kind: str, event: str) -> str:
    """Name of the tenure column of ``event`` (a name) of kind ``gw``, ``aw`` or ``ttf``."""
    return f"{kind}{SEP}{code_of(event)}"


def setup_col(step: str) -> str:
    return f"setup{SEP}{code_of(step)}"


def maturity_col(category: str) -> str:
    return f"maturity{SEP}{code_of(category)}"


def setup_done_col(step: str) -> str:
    """The milestone flags' column: ``step`` (a name) done by ``as_of``."""
    return f"setup_done{SEP}{code_of(step)}"


def mature_col(category: str) -> str:
    """The milestone flags' column: the account is mature in ``category`` (a name)."""
    return f"mature{SEP}{code_of(category)}"


def category_features_col(category: str) -> str:
    """The milestone flags' column: distinct features of ``category`` (a name) used."""
    return f"features{SEP}{code_of(category)}"


def feature_of(column: str, names: Mapping[str, str] | None = None) -> str | None:
    """The product feature (its name) a snapshot column belongs to, or None for other
    columns. ``names`` is the lookup from code to name (:func:`name_lookup`); without it, or
    for a code it lacks, the code itself is returned (a plain name is its own code)."""
    if SEP not in column:
        return None
    head, kind = column.rsplit(SEP, 1)
    if kind not in FEATURE_KINDS:
        return None
    return names.get(head, head) if names is not None else head
