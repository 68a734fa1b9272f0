"""Units: what a series is measured in, and how a person should read its numbers.

Real metrics rarely declare a unit. Prometheus puts it in the name (``_seconds``, ``_bytes``,
``_ratio``), many exporters and CSV dumps in brackets (``Latency(s)``, ``Memory(Mi)``,
``CpuRate(%)``). :func:`unit_of` reads both conventions; :func:`format_value` then prints every
number of one item in one unit system (``910 MiB -> 1.55 GiB``, never ``954M bytes``), so the
engine's sentences and the reports' tables quote the same figures.
"""

from __future__ import annotations

import re

# Counters of seconds or bytes (``cpu_usage_seconds_total``) are rates once queried: cores and
# bytes per second, not durations and sizes, so ``_total`` names get no unit from the suffix.
_SUFFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:_|\b)(?:seconds?|secs?)$"), "s"),
    (re.compile(r"(?:_|\b)(?:milliseconds?|ms)$"), "ms"),
    (re.compile(r"(?:_|\b)bytes$|[a-z]Bytes$"), "bytes"),
    (re.compile(r"(?:_|\b)ratio$"), "ratio"),
    (re.compile(r"(?:_|\b)percent(?:age)?$"), "%"),
)
_BRACKETED = re.compile(r"[(\[]\s*([^()\[\]]{1,12}?)\s*[)\]]\s*$")
_BINARY = {"ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30}
_DECIMAL = {"kb": 1e3, "mb": 1e6, "gb": 1e9}


def unit_of(name: str, declared: str | None = "") -> str:
    """The unit a series is in: the declared one, else the one its name carries."""
    if declared and declared.strip():
        return declared.strip()
    bracketed = _BRACKETED.search(name)
    if bracketed:
        return bracketed.group(1)
    for pattern, unit in _SUFFIXES:
        if pattern.search(name):
            return unit
    return ""


def plain(value: float) -> str:
    """Three significant figures for small numbers, thousands separators for big ones."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size == 0:
        return "0"
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    text = f"{value:.{digits}f}" if size >= 0.001 else f"{value:.2e}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{plain(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _seconds(value: float) -> str:
    if abs(value) < 1:
        return f"{plain(value * 1000)} ms"
    if abs(value) >= 120:
        return f"{plain(value / 60)} min"
    return f"{plain(value)} s"


def format_value(value: float | None, unit: str = "") -> str:
    """A number with a human unit: sizes get binary prefixes, durations ms/s/min, ratios %."""
    if value is None:
        return "n/a"
    unit = unit.strip().replace("{", "").replace("}", "")  # UCUM annotations: {request}/s
    key = unit.lower()
    if key in ("bytes", "byte", "b", "by"):
        return _bytes(value)
    if key in _BINARY:
        return _bytes(value * _BINARY[key])
    if key in _DECIMAL:
        return _bytes(value * _DECIMAL[key])
    if key in ("s", "sec", "second", "seconds"):
        return _seconds(value)
    if key in ("ms", "milliseconds"):
        return _seconds(value / 1000)
    if key in ("percent", "%"):
        return f"{plain(value)}%"
    if key == "ratio":
        return f"{plain(value * 100)}%"
    if key == "m":  # Kubernetes millicores
        return f"{plain(value)}m"
    return f"{plain(value)} {unit}".strip()


def duration_text(seconds: float) -> str:
    """``45 s``, ``3m10s``, ``2h05m``: how long something lasted."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


NEAR_ZERO = 0.01  # a baseline under this share of the new value is "~0": no ratio over it


def near_zero(before: float | None, after: float) -> bool:
    """A baseline so small next to the new value that a ratio over it means nothing."""
    return before is None or abs(before) < NEAR_ZERO * abs(after)


def baseline_text(before: float | None, after: float | None, unit: str = "") -> str:
    """The baseline as quoted next to ``after``: ``~0`` when it is near zero."""
    if after is not None and near_zero(before, after):
        return "~0"
    return format_value(before, unit)


def change_ratio(before: float | None, after: float | None) -> str:
    """`` (×2.4)`` for a rise of 2× or more, `` (+35.0%)`` / `` (−59.0%)`` otherwise, and
    nothing over a baseline near zero or across a sign change."""
    if after is None or before is None or near_zero(before, after) or before <= 0 or after < 0:
        return ""
    ratio = after / before
    if ratio >= 2:
        return f" (×{plain(ratio)})"
    change = f"{(ratio - 1) * 100:+.1f}%".replace("-", "−")
    return f" ({change})"


def change_phrase(before: float | None, after: float | None, unit: str = "") -> str:
    """``from 489 ms to 1.2 s (×2.4)``, ``from ~0 to 2.1 s``: both values in the item's unit."""
    if after is None:
        return f"from {format_value(before, unit)}"
    return (
        f"from {baseline_text(before, after, unit)} to {format_value(after, unit)}"
        f"{change_ratio(before, after)}"
    )
