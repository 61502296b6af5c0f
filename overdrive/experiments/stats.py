"""Statistics of A/B experiments: per-user ratio metrics, arm comparisons, SRM, CUPED, sign test.

Why per user: the user is the unit of randomisation, and one user's exposures are not independent
(a user who likes the feed clicks on many items). A per-exposure binomial interval treats every
exposure as a coin flip and is far too narrow on real, clustered data. Every metric here is
therefore a ratio of per-user sums whose variance comes from the delta method over users
(Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics").

Inputs are per-user aggregates of one arm, numpy arrays of equal length: `exposures` (items shown,
> 0), `clicks` (attributed positive outcomes), `engagement` (attributed engagement weight) and
optionally `pre` (pre-period engagement, for CUPED). Everything returns a frozen dataclass with an
`as_dict()` for JSON: floats rounded to 6 significant digits, `None` where a value is undefined
(an empty arm, a single user, a zero control) — never NaN. Undefined values are `None` in the
dataclasses too, so a caller cannot mistake "no data" for a number.

Pure logic: numpy, scipy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as _sps

from overdrive.domain.errors import InvalidInput

SRM_ALARM_P = 0.001  # the usual SRM threshold: a real mismatch gives p far below it, chance rarely does

FloatArray = NDArray[np.float64]


def _round(x: float | None, sig: int = 6) -> float | None:
    """Round to `sig` significant digits (not decimals: p-values like 1e-13 must survive)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{sig}g}")


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise InvalidInput("confidence must be in (0, 1)", field="confidence")
    return float(_sps.norm.ppf(0.5 + confidence / 2.0))


def _vector(name: str, values: ArrayLike) -> FloatArray:
    """A 1-D float array of finite values; a bad shape or NaN is a caller bug, so it raises."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional (one value per user)", field=name)
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name} has NaN or infinite values", field=name)
    return arr


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric of one arm with its standard error and confidence interval.

    `users` is the number of independent units behind it (users; trials for `proportion`).
    `value` is None when undefined (no users, zero denominator); `std_error` and the interval are
    None when they cannot be estimated (fewer than two users)."""

    value: float | None
    std_error: float | None
    ci_low: float | None
    ci_high: float | None
    users: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": _round(self.value),
            "std_error": _round(self.std_error),
            "ci_low": _round(self.ci_low),
            "ci_high": _round(self.ci_high),
            "users": self.users,
        }


def _estimate(value: float | None, se: float | None, users: int, z: float) -> Estimate:
    if value is None or se is None:
        return Estimate(value, None, None, None, users)
    return Estimate(value, se, value - z * se, value + z * se, users)


def ratio_metric(numerators: ArrayLike, denominators: ArrayLike, *, confidence: float = 0.95) -> Estimate:
    """Ratio of sums Σnum/Σden over users (e.g. CTR = Σclicks/Σexposures) with a delta-method CI.

    Why the delta method: R = ȳ/x̄ is a smooth function of two per-user means, so
    Var(R) ≈ Var(y − R·x) / (n·x̄²) — the users, not the exposures, are the independent draws.
    With one user the value is defined but its error is not (None); with no users or Σden = 0
    the value is None as well."""
    y = _vector("numerators", numerators)
    x = _vector("denominators", denominators)
    if y.shape != x.shape:
        raise InvalidInput("numerators and denominators must have one value per user each", field="denominators")
    z = _z(confidence)
    n = int(y.size)
    den = float(x.sum())
    if n == 0 or den == 0.0:
        return Estimate(None, None, None, None, n)
    r = float(y.sum()) / den
    if n < 2:
        return _estimate(r, None, n, z)
    x_mean = den / n
    residual_var = float(np.var(y - r * x, ddof=1))
    return _estimate(r, math.sqrt(max(residual_var, 0.0) / (n * x_mean * x_mean)), n, z)


def mean_metric(values: ArrayLike, *, confidence: float = 0.95) -> Estimate:
    """Per-user mean (e.g. engagement per user, or its CUPED-adjusted version): a ratio metric
    whose denominator is 1 per user, so its error is the plain standard error of the mean."""
    y = _vector("values", values)
    return ratio_metric(y, np.ones_like(y), confidence=confidence)


def proportion(successes: int, trials: int, *, confidence: float = 0.95) -> Estimate:
    """A proportion with a Wilson score interval — for guardrail rates such as errors/requests.

    Why Wilson: error rates are near 0, where the Wald interval collapses to [0, 0] or goes
    negative; Wilson stays inside [0, 1] and keeps its coverage. `std_error` is the Wald one,
    for reference. Requests are treated as independent trials here, which is the guardrail's
    convention, not a per-user analysis."""
    if trials < 0 or successes < 0 or successes > trials:
        raise InvalidInput("need 0 <= successes <= trials", field="successes")
    z = _z(confidence)
    if trials == 0:
        return Estimate(None, None, None, None, 0)
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / trials + z2n / (4.0 * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no 1e-19 rounding dust
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(p, math.sqrt(p * (1.0 - p) / trials), low, high, trials)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment against control: absolute difference and relative lift, each with a CI, and a
    two-sided p-value. `significant` is p < 1 − confidence."""

    control: Estimate
    treatment: Estimate
    difference: float | None
    difference_ci_low: float | None
    difference_ci_high: float | None
    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None
    p_value: float
    significant: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "control": self.control.as_dict(),
            "treatment": self.treatment.as_dict(),
            "difference": _round(self.difference),
            "difference_ci_low": _round(self.difference_ci_low),
            "difference_ci_high": _round(self.difference_ci_high),
            "lift": _round(self.lift),
            "lift_ci_low": _round(self.lift_ci_low),
            "lift_ci_high": _round(self.lift_ci_high),
            "p_value": _round(self.p_value),
            "significant": self.significant,
        }


def compare(control: Estimate, treatment: Estimate, *, confidence: float = 0.95) -> Comparison:
    """Compare two independent arms' estimates (from `ratio_metric` or `mean_metric`).

    Difference t − c with SE √(Vt + Vc); the p-value is the two-sided z-test of that difference.
    Lift t/c − 1 with the delta-method SE √(Vt/c² + t²·Vc/c⁴) (arms are independent, so no
    covariance term). The p-value comes from the difference, not the lift, because under the null
    the difference's SE is the better-estimated one; the two agree asymptotically.

    Degenerate inputs never raise and never give NaN: an undefined value leaves the difference and
    lift None; a zero control leaves the lift None; when the SE of the difference is zero or
    undefined (an empty or single-user arm, all-zero clicks in both arms) no test is possible and
    p = 1.0 (never significant)."""
    z = _z(confidence)
    c, t = control.value, treatment.value
    diff = diff_lo = diff_hi = lift = lift_lo = lift_hi = None
    p_value = 1.0
    if c is not None and t is not None:
        diff = t - c
        if c != 0.0:
            lift = t / c - 1.0
        if control.std_error is not None and treatment.std_error is not None:
            vc, vt = control.std_error**2, treatment.std_error**2
            se_diff = math.sqrt(vc + vt)
            diff_lo, diff_hi = diff - z * se_diff, diff + z * se_diff
            if se_diff > 0.0:
                p_value = float(2.0 * _sps.norm.sf(abs(diff) / se_diff))
            if lift is not None:
                se_lift = math.sqrt(vt / (c * c) + (t * t) * vc / (c**4))
                lift_lo, lift_hi = lift - z * se_lift, lift + z * se_lift
    return Comparison(control, treatment, diff, diff_lo, diff_hi, lift, lift_lo, lift_hi,
                      p_value, p_value < 1.0 - confidence)


def cuped_theta(y: Sequence[ArrayLike], x: Sequence[ArrayLike]) -> float:
    """θ = cov(y, x) / var(x), pooled within arms (one array per arm).

    Why within arms: a treatment effect shifts y in one arm; pooling deviations from each arm's
    own means keeps that shift out of θ. Zero variance of x gives θ = 0 (no adjustment)."""
    if len(y) != len(x):
        raise InvalidInput("need one pre-period array per arm", field="pre")
    sxy = sxx = 0.0
    for name, (ya, xa) in enumerate(zip(y, x, strict=True)):
        yv, xv = _vector(f"y[{name}]", ya), _vector(f"x[{name}]", xa)
        if yv.shape != xv.shape:
            raise InvalidInput("metric and pre-period need one value per user each", field="pre")
        if yv.size == 0:
            continue
        dx = xv - xv.mean()
        sxy += float(np.dot(dx, yv - yv.mean()))
        sxx += float(np.dot(dx, dx))
    return sxy / sxx if sxx > 0.0 else 0.0


def cuped(y: Sequence[ArrayLike], x: Sequence[ArrayLike]) -> list[FloatArray]:
    """CUPED (Deng et al. 2013): per arm, y − θ·(x − x̄) with x the pre-period covariate.

    Takes one array per arm (control first, like the arms) because θ and the centre x̄ must be the
    same for every arm: then the difference of adjusted means stays unbiased, and its variance
    drops by the factor 1 − ρ² where ρ = corr(y, x). Feed each result to `mean_metric` and the two
    estimates to `compare`. For per-user mean metrics (engagement per user); ratio metrics are not
    adjusted here."""
    theta = cuped_theta(y, x)
    ys = [np.asarray(a, dtype=np.float64) for a in y]
    xs = [np.asarray(a, dtype=np.float64) for a in x]
    total = sum(a.size for a in xs)
    centre = float(sum(a.sum() for a in xs)) / total if total else 0.0
    return [ya - theta * (xa - centre) for ya, xa in zip(ys, xs, strict=True)]


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One arm's results: totals, CTR (Σclicks/Σexposures) and engagement per exposure, with
    per-user delta-method intervals."""

    users: int
    exposures: float
    clicks: float
    engagement: float
    ctr: Estimate
    engagement_per_exposure: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "exposures": _round(self.exposures, 12),
            "clicks": _round(self.clicks, 12),
            "engagement": _round(self.engagement, 12),
            "ctr": self.ctr.as_dict(),
            "engagement_per_exposure": self.engagement_per_exposure.as_dict(),
        }


def summarize_arm(exposures: ArrayLike, clicks: ArrayLike, engagement: ArrayLike, *,
                  confidence: float = 0.95) -> ArmSummary:
    """The per-arm results row of an experiment, from per-user aggregates."""
    e = _vector("exposures", exposures)
    return ArmSummary(
        users=int(e.size),
        exposures=float(e.sum()),
        clicks=float(_vector("clicks", clicks).sum()),
        engagement=float(_vector("engagement", engagement).sum()),
        ctr=ratio_metric(clicks, e, confidence=confidence),
        engagement_per_exposure=ratio_metric(engagement, e, confidence=confidence),
    )


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Sample-ratio mismatch: observed users per arm against the configured shares."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    alarm: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "observed": list(self.observed),
            "expected": [_round(e, 12) for e in self.expected],
            "statistic": _round(self.statistic),
            "p_value": _round(self.p_value),
            "alarm": self.alarm,
        }


def srm(observed_counts: Sequence[int], expected_shares: Sequence[float], *,
        threshold: float = SRM_ALARM_P) -> SrmResult:
    """Chi-square goodness-of-fit of users per arm against the arms' shares; `alarm` = p < threshold.

    Why: a split that is off (a bug in assignment, logging or bot filtering) biases every metric,
    and the counts reveal it long before the metrics do. No users yet: p = 1.0, no alarm. Shares
    need not sum to 1; they are normalised."""
    obs = np.asarray(observed_counts, dtype=np.float64)
    shares = np.asarray(expected_shares, dtype=np.float64)
    if obs.ndim != 1 or obs.shape != shares.shape or obs.size < 2:
        raise InvalidInput("need one count and one share for each of at least two arms", field="expected_shares")
    if np.any(obs < 0) or not np.all(np.isfinite(shares)) or np.any(shares <= 0):
        raise InvalidInput("counts must be >= 0 and shares > 0", field="expected_shares")
    total = float(obs.sum())
    expected = shares / shares.sum() * total
    if total == 0.0:
        stat, p = 0.0, 1.0
    else:
        res = _sps.chisquare(obs, expected)
        stat, p = float(res.statistic), float(res.pvalue)
    return SrmResult(tuple(int(c) for c in observed_counts), tuple(float(e) for e in expected),
                     stat, p, p < threshold)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of wins against losses, ties excluded (for interleaving:
    does one ranker win more impressions than the other?). No decided comparisons: 1.0."""
    if wins < 0 or losses < 0:
        raise InvalidInput("wins and losses must be >= 0", field="wins")
    n = wins + losses
    if n == 0:
        return 1.0
    return float(min(1.0, _sps.binomtest(wins, n, 0.5).pvalue))
