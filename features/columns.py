"""Column names shared by the feature tables, the models and the outputs.

Every column derived from one product feature (event) is named ``<event>__<kind>`` so that
the models can group all columns of one feature (``feature_of``).

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

SEP = "__"
FEATURE_KINDS = ("used", "count", "days", "per_seat")
ACCOUNT_KEY = "account_id"
SNAPSHOT_KEY = "snapshot_date"
LABEL = "retained"


def feature_col(event: str, kind: str) -> str:
    """Name of the column of ``event`` of the given kind (``used``, ``count`` ...)."""
    return f"{event}{SEP}{kind}"


def setup_col(step: str) -> str:
    return f"setup{SEP}{step}"


def maturity_col(category: str) -> str:
    return f"maturity{SEP}{category}"


def feature_of(column: str) -> str | None:
    """The product feature a snapshot column belongs to, or None for other columns."""
    if SEP not in column:
        return None
    head, kind = column.rsplit(SEP, 1)
    return head if kind in FEATURE_KINDS else None
