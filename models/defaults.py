"""The default value of every tunable parameter of :mod:`models`, each defined once.

The signatures of :mod:`models` use these constants as their defaults, so a default is
changed here and nowhere else; :mod:`flows.config` can read the same names. Each constant
carries a one-line comment of its meaning.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- statistics

#: Level of every confidence interval; ``1 - CONFIDENCE`` is the significance level of the tests.
CONFIDENCE = 0.95
#: Bootstrap replicates (and permutations) behind an interval or a p-value.
N_BOOTSTRAP = 200

# --------------------------------------------------------------------------- thresholds

#: Fewest share of the rows a threshold's cut must leave on each side.
MIN_SIDE_SHARE = 0.05
#: Most candidate cut points searched for a metric with more distinct values (rates).
MAX_CANDIDATES = 200
#: A setup step done by a larger share of accounts is routine (separates nobody).
SETUP_MAX_PREVALENCE = 0.9
#: A setup step is selected when the lower end of its activation-lift interval is above this.
SETUP_MIN_LIFT = 1.1
#: Days of the utilization period, in the rule sentences ("... per 30 days").
UTILIZATION_PERIOD_DAYS = 30
#: A derived threshold whose interval's upper end is more than this many times its lower end
#: is too uncertain to act on (its milestone is ``unconfirmed``).
MAX_CI_RATIO = 2.0

# --------------------------------------------------------------------------- importance

#: Fewest accounts that must use an event for the models to judge it (``features.min_accounts``);
#: rarer events are listed in importance.csv as too rare to judge.
MIN_FEATURE_ACCOUNTS = 30

#: Most features the models judge besides the configured events (activation, utilization,
#: setup steps, the categories' features, which always are): those used by the most accounts.
#: ``min_accounts`` alone does not bound the width of the tables: on a log of 12,000 accounts
#: with 3,000 Zipf-distributed noise names, all 3,000 names are used by 30 accounts or more.
#: Training and permutation importance cost grows linearly with the judged features: measured
#: there, the train step took 293 s with 124 judged features against 55 s with the 29 of the
#: same log without the noise names; 30 on top of the configured events keeps a typical run
#: near the cost of a 50-name log. The rest are listed in importance.csv as too rare to judge.
MAX_JUDGED_FEATURES = 30

#: Prevalence (share of accounts using a feature) inside which a feature can be a candidate.
PREVALENCE_BAND = (0.05, 0.90)
#: Smallest permutation importance (drop in ROC AUC) counted as important.
MIN_IMPORTANCE = 0.002
#: Share of the crude log-lift a within-plan log-lift must keep not to be "confounded".
CONFOUNDING_SHARE = 0.5
#: Permutations per feature in the permutation importance.
PERMUTATION_REPEATS = 5
#: Rows sampled for the permutation importance (None: all).
PERMUTATION_MAX_ROWS = 10_000
#: Rows sampled for the SHAP importance (None: all).
SHAP_MAX_ROWS = 1000
#: Newest labelled snapshot dates pooled for the retention lifts.
LIFT_SNAPSHOTS = 24

# --------------------------------------------------------------------------- training

#: Newest labelled snapshot dates held out as the out-of-time test set.
TEST_SNAPSHOTS = 3
#: Share of the accounts seen at the test dates that go to the test set.
TEST_ACCOUNT_SHARE = 0.5
#: Trees of the random forest and boosting rounds of LightGBM.
N_ESTIMATORS = 200
#: Maximum tree depth of both tree models.
MAX_DEPTH = 6
#: LightGBM learning rate.
LEARNING_RATE = 0.05
#: LightGBM leaves per tree.
NUM_LEAVES = 7
#: Minimum rows per leaf of both tree models.
MIN_SAMPLES_LEAF = 50
#: Share of the columns each random-forest split considers.
MAX_FEATURES = 0.3
#: Share of the rows each LightGBM round uses (1.0: all).
SUBSAMPLE = 0.8
#: Share of the columns each LightGBM tree uses.
COLSAMPLE = 0.5
#: LightGBM L2 penalty on leaf values.
REG_LAMBDA = 0.0
#: Equal-width bins of the calibration table.
CALIBRATION_BINS = 10

# --------------------------------------------------------------------------- review

#: A milestone's lift on the newest out-of-time cohort below this is a warning.
REVIEW_MIN_LIFT = 1.05
#: Snapshot dates (or months) in the newest out-of-time cohort.
REVIEW_PERIODS = 3
#: Fewest accounts on each side for a cohort lift to be judged.
REVIEW_MIN_GROUP = 20
#: Months the retention curves extend to.
CURVE_MAX_MONTHS = 24
#: Fewest accounts followed for a point of a retention curve to be shown.
CURVE_MIN_AT_RISK = 20
