"""The performance bands (Elite, High, Medium, Low) of the State of DevOps reports, kept
as data with their sources, and the grading of one key against them.

Each report gives, per cluster, a typical value or range of each key; palplat turns them
into limits (a value at or under a band's limit gets that band, checked from Elite down).
Where a report's clusters are not monotonic or leave a gap, the choice made is written
beside the numbers (and in docs/dora.md):

- 2024 change fail rate: Elite 5 %, High 20 %, Medium 10 %, Low 40 %. Clusters are found
  on the four keys together, so High's typical rate can exceed Medium's; graded alone, a
  rate needs ordered limits: palplat uses the same four numbers sorted (5 / 10 / 20 %, Low
  above), i.e. High and Medium swap their rate limits.
- 2024 recovery time: High and Medium both "less than one day", Low "one week to one
  month": High is <= 1 day, Medium <= 1 week (the gap up to Low), Low above.
- 2023 deployment frequency and lead time give Medium and Low the same range: Medium
  keeps its range (once a month / one month), Low is everything beyond.
- Deployment rework rate (2024) has no cluster values: it is reported without a band.

Frequencies are graded on deployments per day averaged over the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HOUR, DAY, WEEK, MONTH, HALF_YEAR = 3600, 86400, 7 * 86400, 30 * 86400, 180 * 86400
# histogram bucket edges: every band limit of the time keys, so a band count is exact
TIME_EDGES = (HOUR, DAY, WEEK, MONTH, HALF_YEAR)
BANDS = ("Elite", "High", "Medium", "Low")
KEYS = (
    "deployment_frequency",
    "lead_time",
    "change_fail_rate",
    "recovery_time",
    "rework_rate",
)

SOURCES = {
    2023: "Google Cloud, Accelerate State of DevOps Report 2023 (DORA), "
    "https://dora.dev/research/2023/dora-report/ (software delivery performance clusters)",
    2024: "Google Cloud, Accelerate State of DevOps Report 2024 (DORA), "
    "https://dora.dev/research/2024/dora-report/ (software delivery performance levels)",
}

# per year and key: ("min" | "max", [limits for Elite, High, Medium]); Low is the rest.
# "max": a value at or under the limit gets the band; "min": at or over.
LIMITS: dict[int, dict[str, tuple[str, tuple[float, float, float]]]] = {
    2023: {
        # on demand / daily..weekly / weekly..monthly / (Low: weekly..monthly, taken as less)
        "deployment_frequency": ("min", (1.0, 1 / 7, 1 / 30)),
        # < 1 day / 1 day..1 week / 1 week..1 month / (Low: same as Medium, taken as more)
        "lead_time": ("max", (DAY, WEEK, MONTH)),
        # 5 % / 10 % / 15 % / 64 %
        "change_fail_rate": ("max", (0.05, 0.10, 0.15)),
        # < 1 hour / < 1 day / 1 day..1 week / 1 month..6 months
        "recovery_time": ("max", (HOUR, DAY, WEEK)),
    },
    2024: {
        # on demand / daily..weekly / weekly..monthly / monthly..every six months
        "deployment_frequency": ("min", (1.0, 1 / 7, 1 / 30)),
        # < 1 day / 1 day..1 week / 1 week..1 month / 1..6 months
        "lead_time": ("max", (DAY, WEEK, MONTH)),
        # 5 % / 20 % / 10 % / 40 %: not monotonic, sorted (see module doc)
        "change_fail_rate": ("max", (0.05, 0.10, 0.20)),
        # < 1 hour / < 1 day / < 1 day / 1 week..1 month: Medium up to a week
        "recovery_time": ("max", (HOUR, DAY, WEEK)),
    },
}

# what each report printed, for the documentation and the report's footnote
PUBLISHED: dict[int, dict[str, tuple[str, str, str, str]]] = {
    2023: {
        "deployment_frequency": (
            "On demand",
            "Between once per day and once per week",
            "Between once per week and once per month",
            "Between once per week and once per month",
        ),
        "lead_time": (
            "Less than one day",
            "Between one day and one week",
            "Between one week and one month",
            "Between one week and one month",
        ),
        "change_fail_rate": ("5%", "10%", "15%", "64%"),
        "recovery_time": (
            "Less than one hour",
            "Less than one day",
            "Between one day and one week",
            "Between one month and six months",
        ),
    },
    2024: {
        "deployment_frequency": (
            "On demand (multiple deploys per day)",
            "Between once per day and once per week",
            "Between once per week and once per month",
            "Between once per month and once every six months",
        ),
        "lead_time": (
            "Less than one day",
            "Between one day and one week",
            "Between one week and one month",
            "Between one month and six months",
        ),
        "change_fail_rate": ("5%", "20%", "10%", "40%"),
        "recovery_time": (
            "Less than one hour",
            "Less than one day",
            "Less than one day",
            "Between one week and one month",
        ),
    },
}


def grade(key: str, value: float | None, year: int = 2024) -> str | None:
    """The band of ``value`` for ``key`` (None: no value, or a key without bands)."""
    if value is None:
        return None
    table = LIMITS[year].get(key)
    if table is None:
        return None
    how, limits = table
    for band, limit in zip(BANDS, limits, strict=False):
        if (value <= limit) if how == "max" else (value >= limit):
            return band
    return BANDS[-1]


def level(band: str | None) -> int | None:
    """4 Elite, 3 High, 2 Medium, 1 Low (the recording rules' numbers)."""
    return None if band is None else 4 - BANDS.index(band)


def table(year: int = 2024) -> dict[str, Any]:
    """The bands of ``year`` as data: limits, what was published, the source."""
    return {
        "year": year,
        "source": SOURCES[year],
        "limits": {k: {"how": h, "limits": list(v)} for k, (h, v) in LIMITS[year].items()},
        "published": {k: list(v) for k, v in PUBLISHED[year].items()},
    }


def limits_of(key: str, year: int = 2024) -> Mapping[str, float]:
    how, limits = LIMITS[year][key]
    return dict(zip(BANDS, limits, strict=False))
