"""The demo's planted world: the product's events, the hazard model, and the truth.

Every number that decides who churns and when is here, next to :func:`truth_dict`, which
states the planted milestones in the pipeline's terms (written as ``truth.json``). The
simulation that realises them is :mod:`features.demo.simulate`.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------
# The product and its planted truth
# --------------------------------------------------------------------------------------

SETUP_TRUE = ("install_messenger", "connect_email_channel", "invite_teammate")
SETUP_ROUTINE = ("verify_email",)
SETUP_IRRELEVANT = ("upload_avatar", "choose_theme")
SETUP_STEPS = SETUP_TRUE + SETUP_ROUTINE + SETUP_IRRELEVANT
SETUP_WINDOW_DAYS = 21

ACTIVATION_EVENT = "conversation_closed"
ACTIVATION_WINDOW_DAYS = 60
ACTIVATION_THRESHOLD = 20

UTILIZATION_PERIOD_DAYS = 30
UTILIZATION_WINDOW_DAYS = 90
UTILIZATION_THRESHOLD = 10.0

MATURITY_WINDOW_DAYS = 90
MATURITY_CATEGORIES: dict[str, tuple[str, ...]] = {
    "channels": (
        "chat_channel_used",
        "email_channel_used",
        "whatsapp_channel_used",
        "sms_channel_used",
    ),
    "automation": ("bot_replied", "workflow_triggered", "auto_assign_fired"),
    "operations": ("macro_used", "tag_applied", "note_added", "sla_rule_applied"),
    "interoperability": ("crm_synced", "slack_notified", "api_called"),
    "reporting": ("report_viewed", "report_exported", "dashboard_shared"),
}
MATURITY_THRESHOLDS = {
    "channels": 2,
    "automation": 2,
    "operations": 3,
    "interoperability": 1,
    "reporting": 2,
}
MATURITY_MIN_CATEGORIES = 3

NICHE = "sla_policy_custom"
TABLE_STAKES = "inbox_viewed"
NOISE = ("dark_mode_toggled", "keyboard_shortcut_used", "emoji_reaction_added")

MATURITY_FEATURES = tuple(f for feats in MATURITY_CATEGORIES.values() for f in feats)
EVENT_NAMES = SETUP_STEPS + (ACTIVATION_EVENT,) + MATURITY_FEATURES + (NICHE, TABLE_STAKES) + NOISE
EVENT_CODE = {name: i for i, name in enumerate(EVENT_NAMES)}

# The default number of accounts. The pipeline's statistics count accounts, not snapshot
# rows (an account seen in ten month-end snapshots is one account): at 5,000 accounts the
# weakest planted effects (a single maturity feature, the step at 3 mature categories) sat
# at the noise floor of those statistics, and the planted truth came back whole on 4 of 8
# generator seeds (bench/seeds.py). At 10,000 it comes back whole on 7 of 8, for about an
# eighth more run time (bench/README.md, "Seeds and demo size").
DEMO_ACCOUNTS = 10_000

PLANS = ("starter", "pro", "enterprise")
# no "NA": CSV readers take it for a null
REGIONS = ("north_america", "europe", "asia_pacific", "latin_america")
REGION_SHARES = (0.40, 0.33, 0.18, 0.09)

# Monthly churn hazard (per 30.44 days) of an account of each plan in its first 60 days,
# and the multipliers that apply once the activation window has closed (they compound): an
# account past onboarding that reached no milestone churns 4 times as fast, and each
# milestone divides that. Realised over the simulation this gives about 43% of accounts
# churned by the end at the default size.
#
# The maturity effects are strong on purpose. A feature counts only through its category's
# breadth, so one feature moves retention only for the accounts whose breadth it carries
# across the category threshold (a fifth to a third of its users); with a weak category
# effect (0.75, as in the first version) a single feature's lift within plans was about
# 1.03 and its permutation importance at the noise floor of the demo, and the
# pipeline could not be asked to name each maturity feature a milestone candidate.
PLAN_HAZARD = {"starter": 0.15, "pro": 0.10, "enterprise": 0.05}
HAZARD_MULTIPLIERS = {
    "past_onboarding": 4.0,  # once the 60-day activation window has closed
    "activated": 0.35,  # >= 20 conversations closed in the first 60 days, for life
    "utilized": 0.20,  # >= 10 conversations per seat per 30 days over the trailing 90 days
    "mature": 0.50,  # mature in >= 3 categories
    "mature_category": 0.40,  # each mature category (on top of the above)
}

# Setup steps: probability to ever do the step, mean delay (days) of the first time.
SETUP_PARAMS = {
    "install_messenger": (0.68, 4.0),
    "connect_email_channel": (0.62, 6.0),
    "invite_teammate": (0.55, 7.0),
    "verify_email": (0.985, 0.8),
    "upload_avatar": (0.48, 6.0),
    "choose_theme": (0.33, 6.0),
}
SETUP_BOOST = 1.6  # early conversation volume multiplier per TRUE step done within 21 days
EARLY_MEDIAN = 7.0  # median first-60-day conversation volume without any true step
EARLY_SIGMA = 0.75
RATE_MEDIAN = 9.0  # median conversations per seat per 30 days (after the activation window)
RATE_SIGMA = 0.6
RATE_RHO = 0.95  # month-to-month persistence of an account's usage level
RATE_INNOV = 0.015
# Quiet (dormant) months without any conversation, in the months right after the activation
# window (tenure < DORMANT_DAYS at the month start): rare for activated accounts, so that
# activated accounts rarely go inactive. Later months are never quiet, which keeps the
# per-seat usage of established accounts steady around the utilization threshold.
DORMANT = {"activated": 0.02, "not_activated": 0.15}
DORMANT_DAYS = 150

SEATS_TILT = 0.45
# Per-category adoption propensity ~ Beta(2, 2): most accounts adopt some but not all of a
# category's features, so breadths near the thresholds are common (a uniform propensity puts
# many accounts at none or all of them, where one feature more or less changes nothing).
ADOPT_BETA = (2.0, 2.0)
# Share of enterprise accounts that use the niche premium feature: under 5% of the live
# accounts in all, below the default adoption band.
NICHE_ENTERPRISE = 0.22
# ---- generator options (``--effect`` and ``--names``) -----------------------------------
#: How churn depends on usage: ``planted`` (the milestones above), ``weak`` (churn drawn
#: without any usage dependence) or ``smooth`` (the hazard falls smoothly with usage, no step).
EFFECTS = ("planted", "weak", "smooth")
#: Event names: ``standard`` (the product's events only) or ``messy`` (plus a long tail of
#: oddly spelled noise names with Zipf-distributed volumes).
NAME_STYLES = ("standard", "messy")
# weak: once onboarding is over every account churns at plan_hazard x this, whatever it does
WEAK_FACTOR = 0.35
# smooth: once onboarding is over the hazard is plan_hazard x past_onboarding x
# (1 + rate / SMOOTH_RATE) ** -SMOOTH_POWER x (1 + early / SMOOTH_EARLY) ** -SMOOTH_POWER,
# rate the conversations per seat per 30 days over the trailing 90 days and early the
# conversations in the first 60 days: retention rises with use in many small increments
SMOOTH_RATE = 9.0
SMOOTH_EARLY = 20.0
SMOOTH_POWER = 2.0
# messy: extra noise events per live account and month, spread over the names by Zipf
MESSY_PER_MONTH = 4.0
MESSY_ZIPF = 1.1
MESSY_LONG_TAIL = 240


def messy_names() -> tuple[str, ...]:
    """The noise names of ``--names messy``: case variants of real names, spaces, quotes,
    HTML, SQL, emoji, 300-character names, names that clash with column names, and a long
    tail of generated names. None of them is a name of :data:`EVENT_NAMES`."""
    odd = [
        "Conversation Closed",
        "CONVERSATION_CLOSED",
        "conversation-closed",
        "Conversation_Closed ",
        "Bot Replied",
        "REPORT_VIEWED",
        "Macro Used",
        " inbox_viewed",
        "tag  applied",
        'user said "hi"',
        "it's done",
        "back`tick",
        "a,b;c",
        "path/to/page",
        "C:\\temp\\file",
        "<b>x</b>",
        "<script>alert(1)</script>",
        "a &amp; b",
        "'; DROP TABLE events; --",
        "1 OR 1=1",
        "SELECT * FROM accounts",
        "=SUM(A1:A9)",
        "+cmd",
        "\U0001f389 celebration",
        "\U0001f44d",
        "rocket \U0001f680 launched",
        "caf\u00e9 ouvert",
        "\u65e5\u672c\u8a9e",
        "x" * 300,
        ("long_event_name_" * 20)[:300],
        "count",
        "event",
        "account_id",
        "user_id",
        "occurred_at",
        "retained",
        "__count",
        "null",
        "NULL",
        "NaN",
        "1",
        "-",
    ]
    spellings = ("Feature {k} Clicked", "feature.{k}.viewed", "FEATURE_{k}_USED", "feat {k}")
    tail = [spellings[k % 4].format(k=k) for k in range(MESSY_LONG_TAIL)]
    names = tuple(dict.fromkeys(odd + tail))
    return tuple(n for n in names if n not in EVENT_CODE)


BLOCK = 20_000  # accounts per simulation block (part of the determinism contract)
DAY = 86_400
MONTH = 30.4375 * DAY
NEVER = np.iinfo(np.int64).max


def truth_dict(
    seed: int,
    n_accounts: int,
    end: str | dt.date | dt.datetime,
    months: int,
    effect: str = "planted",
    names: str = "standard",
) -> dict:
    """The planted truth, in the pipeline's terms (written as ``truth.json``).

    With the default options the dictionary is exactly that of earlier versions; with
    ``effect`` or ``names`` set otherwise it adds ``options`` saying what changed (with
    ``weak`` or ``smooth`` the milestone thresholds it states are not planted).
    """
    end_ts = parse_end(end)
    truth = _planted_truth(seed, n_accounts, end_ts, months)
    check_options(effect, names)
    if effect != "planted" or names != "standard":
        notes = {
            "planted": "churn follows the planted milestones",
            "weak": "churn drawn without any usage dependence: plan_hazard x "
            f"{WEAK_FACTOR} once onboarding is over; no milestone is planted",
            "smooth": "the hazard falls smoothly with usage, without a step: plan_hazard x "
            f"past_onboarding x (1 + rate/{SMOOTH_RATE:g})^-{SMOOTH_POWER:g} x "
            f"(1 + early/{SMOOTH_EARLY:g})^-{SMOOTH_POWER:g}; no threshold is planted",
        }
        truth["options"] = {
            "effect": effect,
            "names": names,
            "effect_note": notes[effect],
        }
        if names == "messy":
            truth["options"]["noise_names"] = len(messy_names())
            truth["features"]["noise_messy"] = list(messy_names())
    return truth


def check_options(effect: str, names: str) -> None:
    """Raise ``ValueError`` for an unknown ``effect`` or ``names``."""
    if effect not in EFFECTS:
        raise ValueError(f"effect must be one of {', '.join(EFFECTS)}, got {effect!r}")
    if names not in NAME_STYLES:
        raise ValueError(f"names must be one of {', '.join(NAME_STYLES)}, got {names!r}")


def _planted_truth(seed: int, n_accounts: int, end_ts: pd.Timestamp, months: int) -> dict:
    return {
        "generator": "features.demo",
        "seed": int(seed),
        "n_accounts": int(n_accounts),
        "months": int(months),
        "end": end_ts.isoformat(),
        "as_of": end_ts.isoformat(),
        "retention": {"horizon_days": 180},
        "definitions": {
            "day_index": "date(occurred_at) - date(signup_at) in days; within W days = [0, W)",
            "snapshot": "month ends S; trailing window of W days = dates [S-W+1, S]",
            "label": "customer at signup_date + 60 + 180 (tenure) or at S + 180 (snapshot)",
        },
        "setup": {
            "window_days": SETUP_WINDOW_DAYS,
            "true_steps": list(SETUP_TRUE),
            "routine_steps": list(SETUP_ROUTINE),
            "irrelevant_steps": list(SETUP_IRRELEVANT),
            "effect": "each TRUE step done within window_days multiplies the expected "
            "first-60-day conversation volume (and so raises the activation rate)",
            "early_volume_multiplier_per_true_step": SETUP_BOOST,
        },
        "activation": {
            "event": ACTIVATION_EVENT,
            "window_days": ACTIVATION_WINDOW_DAYS,
            "threshold": ACTIVATION_THRESHOLD,
        },
        "utilization": {
            "event": ACTIVATION_EVENT,
            "per_seat": True,
            "period_days": UTILIZATION_PERIOD_DAYS,
            "window_days": UTILIZATION_WINDOW_DAYS,
            "threshold": UTILIZATION_THRESHOLD,
        },
        "maturity": {
            "window_days": MATURITY_WINDOW_DAYS,
            "categories": dict(MATURITY_THRESHOLDS),
            "features": {k: list(v) for k, v in MATURITY_CATEGORIES.items()},
            "min_categories": MATURITY_MIN_CATEGORIES,
        },
        "features": {
            # snapshot-level features whose use causally lowers churn (the TRUE setup steps
            # act earlier and only through activation; see "setup")
            "drivers": [ACTIVATION_EVENT, *MATURITY_FEATURES],
            "niche": [NICHE],
            "table_stakes": [TABLE_STAKES],
            "noise": list(NOISE),
        },
        "plan_hazard": dict(PLAN_HAZARD),
        "hazard_model": "monthly hazard = plan_hazard[plan] in the first 60 days; once the "
        "activation window has closed: plan_hazard[plan] x past_onboarding x activated x "
        "utilized x mature_category^(mature categories) x mature (if >= min_categories), "
        "the milestone factors from the state at the preceding month end",
        "hazard_multipliers": dict(HAZARD_MULTIPLIERS),
        "dormant_month_probability": dict(DORMANT),
        "dormant_months_before_tenure_days": DORMANT_DAYS,
    }


def check_args(n_accounts: int, months: int, seed: int = 0) -> None:
    """Raise ``ValueError`` for a negative seed or fewer than one account or month."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(n_accounts) < 1:
        raise ValueError(f"n_accounts must be >= 1, got {n_accounts}")
    if int(months) < 1:
        raise ValueError(f"months must be >= 1, got {months}")


def parse_end(end: str | dt.date | dt.datetime) -> pd.Timestamp:
    """The end of the simulated period as a UTC timestamp (a naive one is taken as UTC)."""
    ts = pd.Timestamp(end)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
