"""One small inline SVG chart per evidence item, for the report page.

The page shows every evidence item with its own chart, and a 50-item analysis has to be
served in well under 100 ms. matplotlib (:mod:`agent.chart`, the PNG that Slack and
``chart.png`` show) costs tens of milliseconds per panel, so the page draws its charts
directly as SVG: the same series (found with :func:`agent.chart.matching_signals` and
:func:`agent.chart.matching_logs`), the same marks (incident window, onset, baseline), a
few kilobytes each, no JavaScript, no image request. Every mark differs in shape as well
as colour (a hatched incident window, a dashed onset line, a dotted baseline median), and
the ``<title>``/``<desc>`` say in words what the chart shows.

Only numbers and escaped text reach the markup; no input is ever written unescaped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import numpy as np

from agent.models import Evidence, LogRecord, Signal, Window
from agent.units import duration_text, format_value

WIDTH, HEIGHT = 400, 140
LEFT, RIGHT, TOP, BOTTOM = 62, 10, 18, 22
MAX_BUCKETS = 160  # per series: min and max of each bucket, so spikes survive
MAX_LINES = 6  # as agent.chart.MAX_LINES_PER_PANEL
MAX_BARS = 180
# Explicit bidi controls reorder the text after them (a log line could make "payments" read
# "stnemyap" or hide what follows): shown as visible marks, never applied.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_C0 = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def inert(text: str) -> str:
    """``text`` with bidi controls shown as ``⟪U+202E⟫`` and other control characters as
    U+FFFD; what a page shows of any untrusted string (before escaping)."""
    if text.isascii() and text.isprintable():  # the common case, and no control in it
        return text
    text = _BIDI_CONTROLS.sub(lambda m: f"⟪U+{ord(m.group()):04X}⟫", text)
    return _C0.sub("\ufffd", text)


def _escape(text: str) -> str:
    return escape(inert(text))


@dataclass(frozen=True)
class Frame:
    """The plot area over the analysed window and a value range."""

    t0: float
    t1: float
    lo: float
    hi: float

    def x(self, t: float) -> float:
        span = (self.t1 - self.t0) or 1.0
        share = min(1.0, max(0.0, (t - self.t0) / span))
        return LEFT + share * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = (self.hi - self.lo) or 1.0
        share = min(1.0, max(0.0, (value - self.lo) / span))
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)

    def xs(self, t: np.ndarray) -> np.ndarray:
        share = np.clip((t - self.t0) / ((self.t1 - self.t0) or 1.0), 0.0, 1.0)
        return LEFT + share * (WIDTH - LEFT - RIGHT)

    def ys(self, v: np.ndarray) -> np.ndarray:
        """Heights of the values; NaN (a missing value) stays NaN."""
        share = np.clip((v - self.lo) / ((self.hi - self.lo) or 1.0), 0.0, 1.0)
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)


def _n(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _thinned(signal: Signal, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of the points drawn, NaN where a value is missing: every point of a
    short series; of a long one, the lowest and highest of each of :data:`MAX_BUCKETS` time
    buckets and its first gap (a one-sample spike stays visible, a gap stays a gap)."""
    t = np.asarray(signal.timestamps, dtype=float)
    v = np.asarray(signal.values, dtype=float)  # None -> NaN
    if len(t) <= 2 * MAX_BUCKETS:
        return t, v
    bucket = np.floor((t - frame.t0) / ((frame.t1 - frame.t0) / MAX_BUCKETS or 1.0))
    starts = np.flatnonzero(np.r_[True, np.diff(bucket) != 0]).tolist()
    keep: list[int] = []
    for start, end in zip(starts, [*starts[1:], len(t)], strict=True):
        part = v[start:end]
        gaps = np.flatnonzero(np.isnan(part))
        if len(gaps) == len(part):
            keep.append(start)
            continue
        keep += [start + int(np.nanargmin(part)), start + int(np.nanargmax(part))]
        keep += [start + int(gaps[0])] if len(gaps) else []
    chosen = np.unique(keep)
    return t[chosen], v[chosen]


def _path(t: np.ndarray, v: np.ndarray, frame: Frame) -> str:
    """An SVG path through the points (to a tenth of a unit), lifting the pen at each
    missing value."""
    xs = np.rint(frame.xs(t) * 10).astype(np.int64).tolist()
    ys = frame.ys(v)
    gaps = np.isnan(ys)
    ys = np.rint(np.where(gaps, 0.0, ys) * 10).astype(np.int64).tolist()
    parts = []
    command = "M"
    for x, y, gap in zip(xs, ys, gaps.tolist(), strict=True):
        if gap:
            command = "M"
            continue
        parts.append(f"{command}{x // 10}.{x % 10} {y // 10}.{y % 10}")
        command = "L"
    return " ".join(parts)


def _span(values: Iterable[float]) -> tuple[float, float]:
    seen = [v for v in values if math.isfinite(v)]
    if not seen:
        return 0.0, 1.0
    lo, hi = min(seen), max(seen)
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M")


class _Canvas:
    """Collects SVG elements for one chart; ``key`` keeps its ids unique on the page."""

    def __init__(self, key: str, frame: Frame) -> None:
        self.key = key
        self.frame = frame
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, text: str, cls: str, anchor: str = "start") -> None:
        self.add(
            f'<text x="{_n(x)}" y="{_n(y)}" class="{cls}" text-anchor="{anchor}">'
            f"{_escape(text)}</text>"
        )

    def window(self, window: Window, onset: datetime | None) -> None:
        """The hatched incident window and the dashed onset line, each labelled."""
        f = self.frame
        x0, x1 = f.x(window.incident_start.timestamp()), f.x(window.end.timestamp())
        self.add(
            f'<rect class="incident" x="{_n(x0)}" y="{TOP}" width="{_n(x1 - x0)}" '
            f'height="{HEIGHT - TOP - BOTTOM}" fill="url(#{self.key}-hatch)"/>'
        )
        self.text(x0 - 3, TOP - 4, "incident ▸", "label", "end")
        if onset is not None:
            xo = f.x(onset.timestamp())
            self.add(
                f'<line class="onset" x1="{_n(xo)}" x2="{_n(xo)}" y1="{TOP}" '
                f'y2="{HEIGHT - BOTTOM}"/>'
            )
            anchor = "end" if xo > WIDTH - 60 else "start"
            self.text(xo + (-3 if anchor == "end" else 3), TOP - 4, "onset", "label", anchor)

    def axes(self, high: float, low: float, unit: str, window: Window) -> None:
        """Axis lines, the highest and lowest value drawn at their height, and the window's
        start, incident start and end."""
        f = self.frame
        base = HEIGHT - BOTTOM
        self.add(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>')
        self.add(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}"/>')
        for value in (high, low) if high != low else (high,):
            y = f.y(value)
            self.add(f'<line class="axis" x1="{LEFT - 3}" x2="{LEFT}" y1="{_n(y)}" y2="{_n(y)}"/>')
            self.text(LEFT - 5, y + 4, format_value(value, unit), "tick", "end")
        ticks = (window.start, window.incident_start, window.end)
        for moment, anchor in zip(ticks, ("start", "middle", "end"), strict=True):
            t = moment.timestamp()
            self.text(f.x(t), HEIGHT - 6, _clock(t), "tick", anchor)

    def svg(self, title: str, desc: str) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} '
            f'{HEIGHT}" role="img" aria-labelledby="{self.key}-t {self.key}-d">'
            f'<title id="{self.key}-t">{_escape(title)}</title>'
            f'<desc id="{self.key}-d">{_escape(desc)}</desc>'
            f'<defs><pattern id="{self.key}-hatch" width="6" height="6" '
            'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            '<line class="hatch" x1="0" y1="0" x2="0" y2="6"/></pattern></defs>'
        )
        return head + "".join(self.parts) + "</svg>"


def metric_chart(
    key: str, evidence: Evidence, window: Window, signals: Sequence[Signal], title: str, desc: str
) -> str | None:
    """The evidence item's series over the window: baseline band (5th to 95th percentile of
    the baseline part), dotted baseline median, hatched incident window, dashed onset.
    None when no series was found."""
    series = list(signals[:MAX_LINES])
    if not series:
        return None
    t0, t1 = window.start.timestamp(), window.end.timestamp()
    split = window.incident_start.timestamp()
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return None
    before = [v for s in series for t, v in s.points() if t < split]
    band = (_percentile(before, 0.05), _percentile(before, 0.95)) if before else None
    median = evidence.baseline.median
    extra = [*(band or ()), *([median] if median is not None else [])]
    frame = Frame(t0, t1, *_span([*values, *extra]))
    canvas = _Canvas(key, frame)
    if band is not None:
        y_top, y_bottom = frame.y(band[1]), frame.y(band[0])
        canvas.add(
            f'<rect class="band" x="{LEFT}" y="{_n(y_top)}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{_n(max(1.0, y_bottom - y_top))}"/>'
        )
    canvas.window(window, evidence.onset)
    if median is not None:
        ym = _n(frame.y(median))
        canvas.add(f'<line class="median" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ym}" y2="{ym}"/>')
    for i, signal in enumerate(series):
        if path := _path(*_thinned(signal, frame), frame):
            canvas.add(f'<path class="series s{i}" d="{path}"/>')
    canvas.axes(max(values), min(values), evidence.unit or series[0].unit, window)
    return canvas.svg(title, desc)


def log_chart(
    key: str,
    evidence: Evidence,
    window: Window,
    records: Sequence[LogRecord],
    title: str,
    desc: str,
) -> str | None:
    """Matching log lines per time bucket (a minute, or wider over long windows: the page's
    legend says so) over the window, with the incident window and the onset. None when no
    line was found."""
    if not records:
        return None
    t0, t1 = window.start.timestamp(), window.end.timestamp()
    bucket_s = max(60.0, math.ceil((t1 - t0) / MAX_BARS / 60) * 60)
    counts = Counter(int((r.timestamp.timestamp() - t0) // bucket_s) for r in records)
    frame = Frame(t0, t1, 0.0, max(counts.values()) * 1.1)
    canvas = _Canvas(key, frame)
    canvas.window(window, evidence.onset)
    base = HEIGHT - BOTTOM
    for i, count in sorted(counts.items()):
        start = t0 + i * bucket_s
        if not t0 <= start < t1:
            continue
        x0, x1 = frame.x(start), frame.x(min(t1, start + bucket_s))
        y = frame.y(count)
        canvas.add(
            f'<rect class="bar" x="{_n(x0)}" y="{_n(y)}" width="{_n(max(0.8, x1 - x0 - 0.4))}" '
            f'height="{_n(base - y)}"/>'
        )
    canvas.axes(max(counts.values()), 0, "lines", window)
    return canvas.svg(title, f"{desc}; bars count lines per {duration_text(bucket_s)}")
