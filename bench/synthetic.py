"""A quick synthetic generator (DuckDB SQL to Parquet), used when ``features.demo`` is absent.

Same shape as the demo: accounts signing up over two years, about 600 events per account with
the event names of ``configs/demo.yaml``, some churn. No planted milestones: the benchmark
only needs volume with a realistic distribution over accounts, events and days.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

EVENTS = [
    # setup steps
    "install_messenger",
    "connect_email_channel",
    "invite_teammate",
    "verify_email",
    "upload_avatar",
    "choose_theme",
    # activation and utilization
    "conversation_closed",
    # maturity categories
    "chat_channel_used",
    "email_channel_used",
    "whatsapp_channel_used",
    "sms_channel_used",
    "bot_replied",
    "workflow_triggered",
    "auto_assign_fired",
    "macro_used",
    "tag_applied",
    "note_added",
    "sla_rule_applied",
    "crm_synced",
    "slack_notified",
    "api_called",
    "report_viewed",
    "report_exported",
    "dashboard_shared",
    # others
    "sla_policy_custom",
    "inbox_viewed",
    "dark_mode_toggled",
    "keyboard_shortcut_used",
    "emoji_reaction_added",
]
EVENTS_PER_ACCOUNT = 600


def write_synthetic(
    out_dir: str | Path, n_events: int, seed: int = 0, end: str = "2026-06-30"
) -> dict:
    """Write ``accounts.parquet`` and ``events.parquet`` with about ``n_events`` events."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_accounts = max(1, round(n_events / EVENTS_PER_ACCOUNT))
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
    names = ", ".join(f"'{e}'" for e in EVENTS)
    # conversation_closed takes about a third of the events, the rest spread over the others.
    con.execute(
        f"""
        CREATE TABLE accounts AS
        SELECT
            'acc_' || lpad(i::VARCHAR, 7, '0') AS account_id,
            TIMESTAMPTZ '{end}' - INTERVAL 730 DAY
                + to_seconds((random() * 700 * 86400)::BIGINT) AS signup_at,
            CASE WHEN random() < 0.35
                 THEN TIMESTAMPTZ '{end}' - INTERVAL 730 DAY
                      + to_seconds((random() * 730 * 86400)::BIGINT)
            END AS churn_draw,
            (1 + floor(random() * random() * 30))::BIGINT AS seats,
            ['starter', 'pro', 'enterprise'][1 + floor(random() * 3)::INT] AS plan,
            ['north_america', 'europe', 'asia_pacific'][1 + floor(random() * 3)::INT] AS region,
            i AS idx
        FROM range({n_accounts}) t(i)
        """
    )
    con.execute(
        """
        CREATE TABLE acc AS
        SELECT account_id, signup_at,
               CASE WHEN churn_draw > signup_at + INTERVAL 1 DAY THEN churn_draw END AS churned_at,
               seats, plan, region, idx
        FROM accounts
        """
    )
    con.execute(
        f"""
        COPY (
            SELECT a.account_id,
                   CASE WHEN r < 0.35 THEN 'conversation_closed'
                        ELSE ([{names}])[1 + floor(random() * {len(EVENTS)})::INT] END AS event,
                   a.signup_at + to_seconds((random() * epoch(
                       least(coalesce(a.churned_at, TIMESTAMPTZ '{end}'), TIMESTAMPTZ '{end}')
                       - a.signup_at))::BIGINT) AS occurred_at,
                   1.0::DOUBLE AS quantity,
                   a.account_id || '_u' || (1 + floor(random() * a.seats))::INT AS user_id
            FROM (SELECT i, random() AS r, (hash(i) % {n_accounts})::BIGINT AS idx
                  FROM range({int(n_events)}) t(i)) e
            JOIN acc a USING (idx)
        ) TO '{out / "events.parquet"}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576)
        """
    )
    con.execute(
        f"""
        COPY (SELECT account_id, signup_at, churned_at, seats, plan, region FROM acc ORDER BY idx)
        TO '{out / "accounts.parquet"}' (FORMAT parquet)
        """
    )
    return {
        "accounts": str(out / "accounts.parquet"),
        "events": str(out / "events.parquet"),
        "n_accounts": n_accounts,
        "n_events": int(n_events),
    }
