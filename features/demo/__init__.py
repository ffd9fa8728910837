"""The demo data source: a fictional customer-support SaaS with planted milestones.

``generate_demo`` and ``write_demo`` simulate accounts of a support-inbox product month by
month and plant the four milestones in exactly the terms the pipeline measures them:

- day index of an event = ``date(occurred_at) - date(signup_at)`` in days, "within the first
  W days" = day index in ``[0, W)``;
- snapshot dates ``S`` are month ends and a trailing window of W days is ``[S - W + 1, S]``;
- retention label = still a customer at ``signup_date + 60 + 180`` (tenure rows) or at
  ``S + 180`` (snapshot rows).

The churn hazard of the calendar month after month end ``S`` is computed from the events
generated up to ``S`` (the same counts the pipeline computes), so the planted thresholds are
exact:

- setup: the TRUE steps done within 21 days raise the early conversation volume (and so the
  chance of activation); ``verify_email`` is routine (~97%), ``upload_avatar`` and
  ``choose_theme`` have no effect;
- activation: ``conversation_closed`` count in the first 60 days ``>= 20`` lowers the monthly
  hazard for life (from the month end at which the window has closed) and makes quiet
  (dormant, conversation-free) months rarer in the following months, so activated accounts
  rarely go inactive;
- utilization: ``conversation_closed`` in ``[S-89, S]`` / seats / 3 ``>= 10`` lowers the next
  month's hazard;
- maturity: distinct features per category in ``[S-89, S]`` at or above the category threshold
  make the category mature (each mature category multiplies the hazard by 0.4); mature in
  ``>= 3`` categories lowers the hazard more. Each maturity feature is a driver in its own
  right: it can carry its category across the threshold.

Once the activation window has closed, an account that reached no milestone churns four
times as fast as in its first 60 days (``past_onboarding``); the milestones divide that.

Generation is vectorised numpy over blocks of accounts (a Python loop runs only over blocks,
months and event types); events stream out in chunks, so memory stays bounded whatever the
number of accounts. The same ``(seed, n_accounts, end, months)`` gives byte-identical data.

Everything else (plan, seats, region, the per-seat usage level, the niche, table-stakes and
noise features) has no effect beyond the plan's base hazard. At the default size (10,000
accounts over 24 months, ``world.DEMO_ACCOUNTS``) this gives about 6.3M events (~630 per
account; the count scales linearly with the number of accounts) and about 43% of the
accounts churned by ``end``.

The package:

- :mod:`features.demo.world`: the product's events, the planted parameters and
  :func:`truth_dict`;
- :mod:`features.demo.simulate`: the simulation, :func:`generate_demo` and :class:`DemoData`;
- :mod:`features.demo.write`: :func:`write_demo`, the files.

It uses numpy and pyarrow only (no Prefect, nothing of ``flows`` or ``models``).
"""

from features.demo.simulate import DemoData, generate_demo
from features.demo.world import truth_dict
from features.demo.write import write_demo

__all__ = ["DemoData", "generate_demo", "truth_dict", "write_demo"]
