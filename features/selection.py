"""Which product features the models judge: a rule of the configuration, applied to the
event names found in the data (``features.*``).

Real event logs hold hundreds to thousands of names, most of them rare. Only the judged
features become columns of the feature tables (besides the events a milestone is configured
with, which are always computed), so the cost of the tables and the models stays nearly
flat in the number of distinct names. Every name that is not judged is still listed, with
its reason, in ``importance.csv`` (:attr:`FeatureSelection.skipped`).

The rule, in this order:

1. ``exclude`` (fnmatch glob patterns, case-sensitive): an event whose name matches one is
   never judged and is not counted in a roll-up;
2. ``rollup`` (``{feature: pattern}``): an event whose name equals a roll-up's name, else
   matches its pattern (the first roll-up in the configuration's order wins), counts toward
   that roll-up feature; an account uses a roll-up when it used any of its events; the
   events themselves are listed as rolled up;
3. ``include``: when patterns are given, an event that is not rolled up is judged only when
   its name matches one (a roll-up is judged whatever ``include`` says: configuring it is
   opting it in);
4. ``min_accounts``: a feature (event or roll-up) is judged only when at least that many
   accounts used it up to ``as_of``; rarer ones are "too rare to judge";
5. ``max_features``: at most this many features are judged, those used by the most
   accounts (ties by name), and on top of them the events a milestone is configured with
   (activation, utilization, setup steps, categories' features) that passed the rules
   above; the others are listed as too rare to judge, with their count of accounts.

The outcome depends on the data, the configuration and nothing else (no randomness): the same
inputs give the same selection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from features.tables import Daily, feature_accounts
from features.tables import event_accounts as _event_accounts

__all__ = ["SKIPPED_VERDICTS", "FeatureSelection", "apply_rule", "select_features"]

#: The verdicts of ``importance.csv`` rows that were not judged.
SKIPPED_VERDICTS = ("too_rare", "excluded", "rolled_up")


@dataclass(frozen=True)
class FeatureSelection:
    """The outcome of the rule.

    Attributes
    ----------
    judged : tuple of str
        The features the models judge, sorted: event names and roll-up names.
    members : dict
        ``{roll-up: its events (sorted)}`` for every roll-up with an event in the data.
    accounts : dict
        ``{feature: accounts that used it}`` for the judged features.
    skipped : tuple of dict
        One row per name that is not judged: ``feature``, ``verdict`` (one of
        :data:`SKIPPED_VERDICTS`), ``reason``, ``accounts``, ``rolled_up_into`` (the roll-up
        of a rolled-up event, else None). Each event name of the data is either judged, a
        member of a judged roll-up (listed as rolled up), or listed here once.
    """

    judged: tuple[str, ...]
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accounts: dict[str, int] = field(default_factory=dict)
    skipped: tuple[dict, ...] = ()

    def judged_members(self) -> dict[str, tuple[str, ...]]:
        """The roll-ups among the judged features: ``{feature: its events}``."""
        return {f: self.members[f] for f in self.judged if f in self.members}


def _first_match(name: str, patterns: Sequence[str]) -> str | None:
    return next((p for p in patterns if fnmatchcase(name, p)), None)


def apply_rule(
    names: Sequence[str],
    event_accounts: Mapping[str, int],
    rollup_accounts: Mapping[str, int] | None = None,
    *,
    min_accounts: int,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    rollup: Mapping[str, str] | None = None,
    max_features: int | None = None,
    configured: Sequence[str] = (),
) -> FeatureSelection:
    """The rule of the module's docstring on counted names (a pure function).

    Parameters
    ----------
    names : sequence of str
        The distinct event names of the data.
    event_accounts : mapping
        Accounts that used each event.
    rollup_accounts : mapping, optional
        Accounts that used each roll-up (any of its events; see :func:`rollup_members`).
    """
    members = rollup_members(names, exclude=exclude, rollup=rollup)
    rolled = {e: r for r, evs in members.items() for e in evs}
    skipped: list[dict] = []
    candidates: dict[str, int] = {}
    for name in sorted(set(map(str, names))):
        n = int(event_accounts.get(name, 0))
        pattern = _first_match(name, exclude)
        if pattern is not None:
            reason = f"not judged: the name matches features.exclude pattern {pattern!r}"
            skipped.append(_row(name, "excluded", reason, n))
        elif name in rolled:
            continue  # listed with its roll-up below
        elif include and _first_match(name, include) is None:
            reason = "not judged: the name matches no features.include pattern"
            skipped.append(_row(name, "excluded", reason, n))
        else:
            candidates[name] = n
    for r in members:
        candidates[r] = int((rollup_accounts or {}).get(r, 0))
    passing = {f: n for f, n in candidates.items() if n >= int(min_accounts)}
    for f in sorted(set(candidates) - set(passing)):
        reason = (
            f"too rare to judge: used by {candidates[f]:,} accounts, fewer than "
            f"features.min_accounts = {int(min_accounts)}"
        )
        skipped.append(_row(f, "too_rare", reason, candidates[f]))
    keep = set(passing)
    if max_features is not None and len(passing) > int(max_features):
        always = {f for f in passing if f in set(configured)}
        ranked = sorted(set(passing) - always, key=lambda f: (-passing[f], f))
        room = int(max_features)  # the configured events come on top
        keep = always | set(ranked[:room])
        for f in ranked[room:]:
            reason = (
                f"too rare to judge: used by {passing[f]:,} accounts; only the "
                f"{int(max_features)} most used features are judged, besides the events "
                "a milestone is configured with"
            )
            skipped.append(_row(f, "too_rare", reason, passing[f]))
    for r, evs in members.items():
        for e in evs:
            if e == r:
                continue  # the roll-up's own name: the roll-up's row stands for it
            reason = f"counted in the roll-up feature {r!r} (features.rollup)"
            row = _row(e, "rolled_up", reason, int(event_accounts.get(e, 0)))
            skipped.append({**row, "rolled_up_into": r})
    judged = tuple(sorted(keep))
    skipped.sort(key=lambda row: row["feature"])
    return FeatureSelection(
        judged=judged,
        members=members,
        accounts={f: passing[f] for f in judged},
        skipped=tuple(skipped),
    )


def _row(feature: str, verdict: str, reason: str, accounts: int) -> dict:
    return {
        "feature": feature,
        "verdict": verdict,
        "reason": reason,
        "accounts": int(accounts),
        "rolled_up_into": None,
    }


def rollup_members(
    names: Sequence[str], *, exclude: Sequence[str] = (), rollup: Mapping[str, str] | None = None
) -> dict[str, tuple[str, ...]]:
    """``{roll-up: its events (sorted)}`` among ``names``: the events not excluded whose name
    equals the roll-up's, else that match its pattern (first roll-up in order wins). Roll-ups
    without an event are left out."""
    rollup = dict(rollup or {})
    out: dict[str, list[str]] = {r: [] for r in rollup}
    for name in sorted(set(map(str, names))):
        if _first_match(name, exclude) is not None:
            continue
        if name in rollup:
            out[name].append(name)
            continue
        r = next((r for r, p in rollup.items() if fnmatchcase(name, p)), None)
        if r is not None:
            out[r].append(name)
    return {r: tuple(evs) for r, evs in out.items() if evs}


def select_features(
    daily: Daily,
    *,
    as_of: dt.datetime | None,
    min_accounts: int,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    rollup: Mapping[str, str] | None = None,
    max_features: int | None = None,
    configured: Sequence[str] = (),
) -> FeatureSelection:
    """Count the accounts of every event (and roll-up) in the engine, one small query over
    the (account, event, day) aggregate (two with roll-ups), and apply the rule
    (:func:`apply_rule`)."""
    per_event = _event_accounts(daily, as_of=as_of)
    names = list(per_event)
    members = rollup_members(names, exclude=exclude, rollup=rollup)
    per_rollup = feature_accounts(daily, members, as_of=as_of) if members else {}
    return apply_rule(
        names,
        per_event,
        per_rollup,
        min_accounts=min_accounts,
        include=include,
        exclude=exclude,
        rollup=rollup,
        max_features=max_features,
        configured=configured,
    )
