"""`milestones init`: a first, runnable configuration with the evidence for each proposal.

The proposals come from the data profile (:func:`flows.steps.profile.build_profile` with the
co-usage groups). The file is written as text so that each proposal carries its evidence in
comments; every value in it is written by ``yaml.safe_dump`` (double-quoted, escaped), and
every name quoted in a comment is escaped the same way, so that no event name, however it is
spelled (quotes, ``#``, line breaks, HTML, emoji), can change the file's structure. The
text is checked by loading it with :func:`flows.config.load_config` before it is put in
place, atomically, and an existing file is replaced only when asked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from flows.errors import ConfigError

#: Runners-up of the activation scan listed in the comments.
RUNNERS_UP = 5
#: Characters a YAML reader refuses or reads as a line break, even inside a comment.
_UNSAFE = re.compile("[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def quoted(name: Any) -> str:
    """A name as a comment shows it: in double quotes, escaped, on one line."""
    text = json.dumps(str(name), ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def value(v: Any) -> str:
    """One YAML value on one line: strings double-quoted and escaped by ``yaml.safe_dump``,
    lists in flow style, numbers and booleans plain."""
    if isinstance(v, str):
        text = yaml.safe_dump(v, default_style='"', allow_unicode=True, width=float("inf"))
        return text.strip().removesuffix("...").strip()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    raise TypeError(f"no YAML form for {type(v).__name__}")


def check_target(target: Path, force: bool) -> None:
    """Refuse an existing file unless ``force``; refuse a folder always.

    Raises
    ------
    ConfigError
        Naming the file and the option that replaces it.
    """
    if target.is_dir():
        raise ConfigError(f"--out: {target} is a folder; name the configuration file to write")
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to replace it")


def _relative(path: str, folder: Path) -> str:
    """``path`` relative to the configuration's folder (resolved there at load) when it lies
    at most two folders up from it, else absolute."""
    try:
        rel = os.path.relpath(path, folder)
    except ValueError:  # another drive
        return str(path)
    return str(path) if rel.startswith(os.path.join("..", "..", "..")) else rel


def _pct(v: Any) -> str:
    return "?" if v is None else f"{100 * float(v):.0f}%"


def _f(v: Any, digits: int = 3) -> str:
    return "?" if v is None else f"{float(v):.{digits}f}"


def _comment(lines: list[str], indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}# {line}".rstrip() for line in lines]


def propose(profile: dict) -> dict:
    """The proposed values (plain data) read off a profile with co-usage groups."""
    from models.proposals import plain_name

    scan = profile.get("activation_scan") or []
    setup = [c["event"] for c in profile["setup"]["candidates"]]
    by_reach = [e["event"] for e in profile["events"] if e["event"] not in setup]
    activation = scan[0]["event"] if scan else (by_reach[0] if by_reach else None)
    if activation is None:
        raise ConfigError("the events table holds no event to propose a milestone from")
    setup = [s for s in setup if s != activation]
    categories: dict[str, list[str]] = {}
    groups = profile.get("groups") or {}
    for g in groups.get("groups", []):
        categories[plain_name(g["members"][0], categories)] = list(g["members"])
    if not categories and groups.get("features"):
        categories["features"] = list(groups["features"][:10])
    w = profile["windows"]
    return {
        "activation": activation,
        "setup": setup,
        "categories": categories,
        "per_seat": bool(profile["seats"]["vary"]),
        "windows": {k: int(w[k]) for k in ("setup", "activation", "utilization", "maturity")},
        "horizon": int(w["horizon"]),
        "churn": profile["churn"]["source"],
    }


def config_text(
    profile: dict,
    proposal: dict,
    target: Path,
    as_of: dt.datetime | None,
    columns: dict[str, str] | None = None,
    timestamps: dict[str, str] | None = None,
) -> str:
    """The configuration file's text: the proposals with their evidence in comments."""
    src = profile["sources"]
    h, f, win = profile["history"], profile["frequency"], profile["windows"]
    folder = target.parent
    lines = _comment(
        [
            "Customer milestones: a first configuration proposed by `milestones init`.",
            "",
            "NOTHING IN THIS FILE IS FINAL. Every value is a proposal read off the data, with",
            "the evidence for it in the comments: read it, rename the maturity categories,",
            "move features between them, add or drop setup steps, then run",
            f"  milestones run --config {target.name}",
            "`milestones profile` describes the same data on one page.",
            "",
            f"Data: {h['accounts']:,} accounts ({h['churned']:,} churned), {h['events']:,} "
            f"events of {h['distinct_events']:,} distinct names,",
            f"signups {h['first_signup']} to {h['last_signup']}, history of {h['months']} "
            f"months, as of {profile['as_of']}.",
        ],
        0,
    )
    lines += ["data:"]
    lines += [f"  accounts: {value(_relative(src['accounts'], folder))}"]
    lines += [f"  events: {value(_relative(src['events'], folder))}"]
    for key, pairs in (("columns", columns), ("timestamps", timestamps)):
        if pairs:
            lines += [f"  {key}:"] + [f"    {value(k)}: {value(v)}" for k, v in pairs.items()]
    if as_of is not None:
        lines += [f"  as_of: {value(as_of.isoformat())}"]
    else:
        lines += ["  # as_of: default is the latest event time"]
    lines += [""]
    lines += _comment(
        [
            f"Usage frequency: of the active accounts, {_pct(f['daily'])} are active daily, "
            f"{_pct(f['weekly'])} weekly,",
            f"{_pct(f['monthly'])} less often: a {f['product']} product. The windows below "
            "follow from it.",
            f"Horizon: {win['proposed']['horizon_reason']}.",
        ],
        0,
    )
    lines += ["retention:", f"  horizon_days: {proposal['horizon']}"]
    churn = profile["churn"]
    if proposal["churn"] == "inactivity":
        lines += _comment(
            [
                "The accounts carry no churn date: churn is derived from silence, with a gap",
                f"fitted to the product's return rate (here {churn.get('gap_days')} days, "
                f"{_pct(churn.get('return_rate'))} of silent accounts return).",
            ],
            2,
        )
        lines += ["  churn: inactivity"]
    lines += ["", "milestones:"]
    lines += _setup_lines(profile, proposal)
    lines += _activation_lines(profile, proposal)
    lines += _utilization_lines(profile, proposal)
    lines += _maturity_lines(profile, proposal)
    lines += _tracking_lines(target)
    return "\n".join(lines) + "\n"


def _tracking_lines(target: Path) -> list[str]:
    """An MLflow experiment and registered model of this configuration's own, so that its
    champion is compared only with earlier runs on the same data, never with the demo's."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", target.stem).strip("-") or "data"
    return [
        "",
        *_comment(
            [
                "This data's own MLflow experiment and registered model: a new model is",
                "compared only with the champion of earlier runs of this configuration.",
            ],
            0,
        ),
        "tracking:",
        f"  experiment: {value('milestones-' + stem)}",
        f"  model_name: {value('milestones-' + stem + '-retention')}",
    ]


def _setup_lines(profile: dict, proposal: dict) -> list[str]:
    setup = profile["setup"]
    out = ["  setup:"]
    notes = [
        "Candidates: events done early and rarely again (most of their uses in an account's",
        f"first 30 days), most done within {setup['window_days']} days of signup first. The "
        "run keeps those",
        "that lift the activation rate and drops routine ones (done by nearly everyone).",
    ]
    for c in setup["candidates"]:
        notes.append(
            f"  {quoted(c['event'])}: {_pct(c['share_early'])} of accounts within "
            f"{setup['window_days']} days, median first use day "
            f"{_f(c['median_first_use_days'], 0)}"
        )
    if not setup["candidates"]:
        notes.append("  (no front-loaded event: add onboarding steps by hand)")
    out += _comment(notes, 4)
    out += [f"    window_days: {proposal['windows']['setup']}"]
    out += [f"    steps: {value(proposal['setup'])}"]
    return out


def _activation_lines(profile: dict, proposal: dict) -> list[str]:
    scan = profile.get("activation_scan") or []
    r = profile["retention"]
    w = r["window_days"]
    out = ["  activation:"]
    notes = [
        f"Scan: for every event but the setup candidates, the count in the first {w} days",
        f"that best separates the {r['labelled']:,} accounts whose outcome "
        f"{r['horizon_days']} days later is known",
        "(phi correlation of 'at least that many' with 'retained', 95% interval); ranked by",
        "the interval's low end. Setup steps are done once: their count is no amount of use.",
    ]
    if scan:
        top = scan[0]
        notes += [
            f"Proposed: {quoted(top['event'])}: accounts with at least {top['count']} in "
            f"{w} days ({_pct(top['reach'])})",
            f"  stayed {_pct(top['retention_with'])} against {_pct(top['retention_without'])}"
            f", phi {_f(top['phi'])} [{_f(top['phi_low'])}, {_f(top['phi_high'])}].",
            "Runners-up:",
        ]
        for i, a in enumerate(scan[1 : 1 + RUNNERS_UP], start=2):
            notes.append(
                f"  {i}. {quoted(a['event'])} at least {a['count']}: phi {_f(a['phi'])} "
                f"[{_f(a['phi_low'])}, {_f(a['phi_high'])}], {_pct(a['reach'])} of accounts"
            )
    else:
        notes.append("No event separates enough accounts: proposed the most used one.")
    scanned = profile["windows"].get("scanned") or {}
    if len(scanned) > 1:
        parts = [
            f"{k} days: phi low {_f(v['phi_low'])}" for k, v in scanned.items() if v is not None
        ]
        notes.append(f"Window: the one whose best event separates best ({'; '.join(parts)}).")
    notes.append("The run derives the threshold (the count) with its interval.")
    out += _comment(notes, 4)
    out += [f"    event: {value(proposal['activation'])}"]
    out += [f"    window_days: {proposal['windows']['activation']}"]
    return out


def _utilization_lines(profile: dict, proposal: dict) -> list[str]:
    seats = profile["seats"]
    per_seat = proposal["per_seat"]
    out = ["  utilization:"]
    why = (
        f"seats vary (median {_f(seats['median'], 0)}): the activation event per purchased seat"
        if per_seat
        else "seats hardly vary: the activation event per account, not per seat"
    )
    out += _comment([f"Use of the activation event per 30 days; {why}."], 4)
    out += [f"    event: {value(proposal['activation'])}"]
    out += [f"    per_seat: {value(per_seat)}", "    period_days: 30"]
    out += [f"    window_days: {proposal['windows']['utilization']}"]
    return out


def _maturity_lines(profile: dict, proposal: dict) -> list[str]:
    groups = profile.get("groups") or {}
    out = ["  maturity:"]
    notes = [
        "Categories: features that the same accounts use together (correlation of per-account",
        f"log usage in the last {groups.get('min_life_days', '?')} days, over "
        f"{groups.get('accounts', 0):,} accounts observed that long, average-linkage",
        f"clustering on 1 - correlation, cut at a correlation of {_f(groups.get('level'))}). "
        "Each is named",
        "after its most used feature: rename them, move features, drop the ones that are not",
        "product breadth. Left out: setup steps, the activation event, and features used by",
        "fewer than 5% or more than 90% of accounts.",
    ]
    if groups.get("unassigned"):
        names = ", ".join(quoted(n) for n in groups["unassigned"][:30])
        more = len(groups["unassigned"]) - 30
        notes.append(f"Used with no other feature (not proposed): {names}")
        if more > 0:
            notes.append(f"  and {more} more (see profile.json)")
    out += _comment(notes, 4)
    out += [f"    window_days: {proposal['windows']['maturity']}"]
    if not proposal["categories"]:
        out += ["    categories: {}"]
        return out
    out += ["    categories:"]
    cohesion = {tuple(g["members"]): g["cohesion"] for g in groups.get("groups", [])}
    for name, members in proposal["categories"].items():
        c = cohesion.get(tuple(members))
        if c is not None:
            out += _comment([f"mean correlation {_f(c, 2)}"], 6)
        out += [f"      {value(name)}: {value(members)}"]
    return out


def write_config(text: str, target: Path, force: bool) -> None:
    """Check ``text`` by loading it as a configuration, then put it at ``target`` atomically.

    Without ``force`` the file is created only if absent (a hard link, which fails when the
    name exists), so a file that appeared meanwhile is not replaced either.
    """
    from flows.config import load_config
    from flows.store.publish import naming_path

    with naming_path(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".yaml", dir=target.parent)
    try:
        with naming_path(target), os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            load_config(tmp)
        except ConfigError as exc:  # a proposal that does not load is a bug, not a user's error
            raise RuntimeError(f"the proposed configuration does not load: {exc}") from exc
        with naming_path(target):
            os.chmod(tmp, 0o644)
            if force:
                os.replace(tmp, target)
            else:
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    raise ConfigError(f"{target} exists; pass --force to replace it") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def init_config(
    accounts: Path,
    events: Path,
    target: Path,
    *,
    columns: dict[str, str] | None = None,
    timestamps: dict[str, str] | None = None,
    force: bool = False,
    as_of: dt.datetime | None = None,
    engine: str = "duckdb",
    seed: int = 0,
) -> dict:
    """Profile the inputs and write the proposed configuration to ``target``.

    Returns the proposal (plain data) with the profile under ``profile``.

    Raises
    ------
    ConfigError
        When ``target`` exists and ``force`` is not set (checked before any work).
    InvalidInputError
        When the inputs cannot be read or break the data contract.
    """
    from flows.steps.profile import Sources, build_profile, open_sources

    target = Path(target).resolve()
    check_target(target, force)
    src = Sources(
        accounts=str(Path(accounts).resolve()),
        events=str(Path(events).resolve()),
        columns=dict(columns or {}),
        timestamps=dict(timestamps or {}),
        as_of=as_of,
        engine=engine,
    )
    inputs, churn = open_sources(src)
    profile = build_profile(
        inputs,
        churn,
        groups=True,
        seed=seed,
        sources={"accounts": src.accounts, "events": src.events},
    )
    proposal = propose(profile)
    text = config_text(profile, proposal, target, as_of, src.columns, src.timestamps)
    write_config(text, target, force)
    return {**proposal, "profile": profile}
