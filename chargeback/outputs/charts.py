"""Report charts as inline SVG: pure functions from figures to markup, no script and no external asset.

Every label is escaped before it enters the SVG, so the result can be marked safe for the
autoescaping templates. Series differ by lightness, hatching and dash pattern as well as by hue,
so a grayscale print still tells them apart, and every value is also written out as text.
Coordinates are printed with two decimals: the same figures give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from pool_catalog.numbers import format_number, format_percent

WIDTH = 720
LABEL_WIDTH = 210
VALUE_WIDTH = 130
PLOT_WIDTH = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20
LEVEL_PLOT_WIDTH = WIDTH - LABEL_WIDTH - 250
ROW = 26
BAR = 16
FONT = 'font-family="Noto Sans, Noto Sans CJK SC, WenQuanYi Micro Hei, sans-serif" font-size="12"'

# (fill, hatched): four lightness steps, then the same steps hatched.
FILLS = ("#1f3a5f", "#4f7cac", "#9dbbd9", "#dfe8f1")
STYLES = tuple((fill, False) for fill in FILLS) + tuple((fill, True) for fill in FILLS)
DASHES = ("", "6 3", "2 3", "8 3 2 3", "12 4", "1 2")
INK = "#1f2933"
RULE = "#9aa5b1"


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar: a resource's cost, say. A negative value is a credit: it is drawn as an
    outlined part taken back from the end of the bar, so the bar's figure is the net of all its parts."""

    label: str
    value: Decimal


@dataclass(frozen=True)
class StackedBar:
    label: str
    segments: Sequence[Segment]

    @property
    def total(self) -> Decimal:
        """The net of every part (credits included): the figure written at the end of the bar."""
        return sum((s.value for s in self.segments), Decimal(0))

    @property
    def gross(self) -> Decimal:
        """The positive parts only: the length of the drawn bar."""
        return sum((s.value for s in self.segments if s.value > 0), Decimal(0))


@dataclass(frozen=True)
class Level:
    """An allocation and its use, in the same unit (cores, GiB …)."""

    label: str
    allocated: Decimal
    used: Decimal
    unit: str
    group: str = ""
    """Rows of one group (a business unit) follow a heading row naming it."""


def _n(value: float | Decimal) -> str:
    return f"{float(value):.2f}"


def _chart_id(name: str) -> str:
    """An id safe in an attribute and unique per chart of a page."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "chart"


def money_text(value: Decimal, places: int) -> str:
    return format_number(value, places)


def _open(chart_id: str, height: float, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {_n(height)}" '
        f'width="{WIDTH}" height="{_n(height)}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" {FONT}>',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def _patterns(chart_id: str) -> str:
    hatched = [
        f'<pattern id="{chart_id}-hatch-{i}" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{fill}"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{INK}" stroke-width="2"/></pattern>'
        for i, fill in enumerate(FILLS)
    ]
    return "<defs>" + "".join(hatched) + "</defs>"


def _fill(chart_id: str, index: int) -> str:
    fill, hatched = STYLES[index % len(STYLES)]
    return f"url(#{chart_id}-hatch-{FILLS.index(fill)})" if hatched else fill


def stacked_bars(
    bars: Sequence[StackedBar], *, title: str, description: str, chart_id: str, currency: str, places: int
) -> Markup:
    """Horizontal bars, one per label, stacked by segment; lengths proportional to value, the longest
    bar filling the plot. Segment kinds keep one style across bars and are named in a legend. Credits
    (negative segments) are drawn outlined over the end of the bar they reduce; the figure after a bar
    is its net total."""
    chart_id = _chart_id(chart_id)
    kinds = sorted({s.label for bar in bars for s in bar.segments if s.value > 0})
    credits = sorted({s.label for bar in bars for s in bar.segments if s.value < 0} - set(kinds))
    style = {kind: i for i, kind in enumerate(kinds)}
    # A credit larger than its bar (a net negative unit) still fits the scale.
    largest = max((max(bar.gross, bar.gross - bar.total) for bar in bars), default=Decimal(0))
    legend = [*kinds, *credits]
    places_of = _legend_places(legend)
    legend_rows = 1 + max((row for _, row in places_of), default=-1)
    height = 10 + ROW * len(bars) + 10 + 20 * legend_rows
    parts = _open(chart_id, height, title, description)
    parts.append(_patterns(chart_id))
    for row, bar in enumerate(bars):
        y = 10 + row * ROW
        parts.append(
            f'<g class="bar" aria-label="{escape(bar.label)}: {escape(currency)} {money_text(bar.total, places)}">'
        )
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{_n(y + BAR - 4)}" text-anchor="end" fill="{INK}">'
            f"{escape(_short(bar.label))}</text>"
        )
        x = Decimal(LABEL_WIDTH)
        for segment in bar.segments:
            if segment.value <= 0:
                continue
            length = Decimal(PLOT_WIDTH) * segment.value / largest
            fill = _fill(chart_id, style[segment.label])
            parts.append(
                f'<rect x="{_n(x)}" y="{y}" width="{_n(length)}" height="{BAR}" fill="{fill}" '
                f'stroke="#ffffff" stroke-width="0.5" data-value="{segment.value}">'
                f"<title>{escape(segment.label)}: {escape(currency)} {money_text(segment.value, places)}</title></rect>"
            )
            x += length
        end = x
        for segment in bar.segments:
            if segment.value >= 0:
                continue
            length = Decimal(PLOT_WIDTH) * -segment.value / largest
            x -= length
            parts.append(
                f'<rect class="credit" x="{_n(x)}" y="{y + 3}" width="{_n(length)}" height="{BAR - 6}" '
                f'{_CREDIT_STYLE} data-value="{segment.value}">'
                f"<title>{escape(segment.label)}: {escape(currency)} {money_text(segment.value, places)}</title></rect>"
            )
        figure = money_text(bar.total, places) + (" net" if bar.total != bar.gross else "")
        parts.append(f'<text x="{_n(end + 6)}" y="{_n(y + BAR - 4)}" fill="{INK}">{figure}</text></g>')
    legend_y = 20 + ROW * len(bars)
    for i, (kind, (column, row)) in enumerate(zip(legend, places_of, strict=True)):
        lx, ly = LABEL_WIDTH + column * LEGEND_COLUMN, legend_y + row * 20
        swatch = f'fill="{_fill(chart_id, i)}" stroke="{INK}" stroke-width="0.5"' if kind in style else _CREDIT_STYLE
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="12" {swatch}/><text x="{lx + 16}" y="{ly + 10}" '
            f'fill="{INK}">{escape(kind)}</text>'
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))


LEGEND_COLUMN = 120
LEGEND_COLUMNS = 4


def _legend_places(labels: Sequence[str]) -> list[tuple[int, int]]:
    """(column, row) of each legend entry, four columns to a row; an entry too long for one column (about
    6 px a column of text after its 16 px swatch) takes as many as it needs, so no name runs into the next."""
    places, column, row = [], 0, 0
    for label in labels:
        span = min(-(-(16 + 6 * sum(map(_width, label))) // LEGEND_COLUMN), LEGEND_COLUMNS)
        if column + span > LEGEND_COLUMNS:
            column, row = 0, row + 1
        places.append((column, row))
        column += span
    return places


_CREDIT_STYLE = f'fill="#ffffff" fill-opacity="0.85" stroke="{INK}" stroke-width="1" stroke-dasharray="3 2"'
"""A credit: a dashed white box over the end of the bar it takes back."""


def _width(character: str) -> int:
    return 2 if unicodedata.east_asian_width(character) in ("W", "F") else 1


def _short(label: str, limit: int = 30) -> str:
    """`label` cut to `limit` columns (a CJK character takes two), with an ellipsis if cut."""
    if sum(map(_width, label)) <= limit:
        return label
    kept, used = [], 1
    for character in label:
        used += _width(character)
        if used > limit:
            break
        kept.append(character)
    return "".join(kept) + "…"


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `value` (an axis maximum a reader can divide)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    raise AssertionError("unreachable")


def daily_trend(
    series: Sequence[tuple[str, Sequence[Decimal]]],
    days: Sequence[dt.date],
    *,
    title: str,
    description: str,
    chart_id: str,
    currency: str,
    places: int,
    note: str = "UTC days",
) -> Markup:
    """Cost per day, one line per series (label, amount per day), on a shared axis from zero.
    A single series is drawn as a filled area; several as lines told apart by dash pattern. `note` is
    printed under the axis: what the days cover (and leave out)."""
    chart_id = _chart_id(chart_id)
    top, left, plot_height, plot_width = 14, 80, 200, WIDTH - 80 - 200
    bottom = top + plot_height
    largest = max((v for _, values in series for v in values), default=Decimal(0))
    ceiling = _nice_ceiling(largest)
    height = bottom + 34
    parts = _open(chart_id, height, title, description)
    for tick in range(5):
        value = ceiling * tick / 4
        y = bottom - plot_height * tick / 4
        parts.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{left + plot_width}" y2="{_n(y)}" stroke="{RULE}" stroke-width="0.5"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{INK}">{money_text(value, places)}</text>'
        )
    step = Decimal(plot_width) / max(len(days) - 1, 1)
    for i, day in enumerate(days):
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{_n(left + step * i)}" y="{bottom + 16}" text-anchor="middle" fill="{INK}">'
                f"{day:%m-%d}</text>"
            )
    parts.append(f'<text x="{left}" y="{bottom + 30}" fill="{INK}">{escape(currency)} per day ({escape(note)})</text>')

    def points(values: Sequence[Decimal]) -> list[str]:
        return [f"{_n(left + step * i)},{_n(bottom - plot_height * v / ceiling)}" for i, v in enumerate(values)]

    for index, (label, values) in enumerate(series):
        coordinates = points(values)
        total = sum(values, Decimal(0))
        name = escape(label)
        parts.append(
            f'<g class="series" aria-label="{name}: {escape(currency)} {money_text(total, places)} in the period">'
        )
        if len(series) == 1:
            area = [f"{left},{bottom}", *coordinates, f"{_n(left + step * (len(values) - 1))},{bottom}"]
            parts.append(f'<polygon points="{" ".join(area)}" fill="{FILLS[2]}" stroke="none"/>')
        dash = DASHES[index % len(DASHES)]
        dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline points="{" ".join(coordinates)}" fill="none" stroke="{FILLS[index % 2]}" '
            f'stroke-width="2"{dash_attribute}><title>{name}</title></polyline>'
        )
        end_y = bottom - plot_height * (values[-1] if values else 0) / ceiling
        label_y = _label_y(index, end_y, len(series), top, bottom)
        if len(series) > 1:  # a sample of the line's dash beside its name
            parts.append(
                f'<line x1="{left + plot_width + 8}" y1="{_n(label_y - 4)}" x2="{left + plot_width + 30}" '
                f'y2="{_n(label_y - 4)}" stroke="{FILLS[index % 2]}" stroke-width="2"{dash_attribute}/>'
            )
        label_x = left + plot_width + (36 if len(series) > 1 else 8)
        parts.append(f'<text x="{label_x}" y="{_n(label_y)}" fill="{INK}">{escape(_short(label, 26))}</text></g>')
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _label_y(index: int, end_y: Decimal | float, count: int, top: int, bottom: int) -> float:
    """End labels of one line beside its last point; of many, stacked in order so they never overlap."""
    if count == 1:
        return float(end_y) + 4
    return top + 10 + index * min(18, (bottom - top) / count)


def allocation_bars(levels: Sequence[Level], *, title: str, description: str, chart_id: str) -> Markup:
    """Per row, the average allocation as an outlined track and the average use as a filled bar inside
    it; both scaled to the row's larger figure, so the fill's share of the track is the utilization."""
    chart_id = _chart_id(chart_id)
    groups = [level.group for level in levels]
    headings = sum(1 for i, group in enumerate(groups) if group and (i == 0 or groups[i - 1] != group))
    height = 10 + ROW * (len(levels) + headings) + 6
    parts = _open(chart_id, height, title, description)
    row = 0
    for index, level in enumerate(levels):
        if level.group and (index == 0 or groups[index - 1] != level.group):
            parts.append(
                f'<text class="group" x="8" y="{10 + row * ROW + BAR - 4}" font-weight="bold" fill="{INK}">'
                f"{escape(_short(level.group, 60))}</text>"
            )
            row += 1
        y = 10 + row * ROW
        row += 1
        scale = max(level.allocated, level.used)
        allocated_width = Decimal(LEVEL_PLOT_WIDTH) * level.allocated / scale if scale else Decimal(0)
        used_width = Decimal(LEVEL_PLOT_WIDTH) * level.used / scale if scale else Decimal(0)
        utilization = format_percent(level.used / level.allocated) if level.allocated else "—"
        text = f"{format_number(level.used, 2)} of {format_number(level.allocated, 2)} {level.unit} ({utilization})"
        parts.append(
            f'<g class="level" aria-label="{escape(level.label)}: {escape(text)}">'
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR - 4}" text-anchor="end" fill="{INK}">'
            f"{escape(_short(level.label))}</text>"
            f'<rect class="allocated" x="{LABEL_WIDTH}" y="{y}" width="{_n(allocated_width)}" height="{BAR}" '
            f'fill="#ffffff" stroke="{INK}" stroke-width="1"/>'
            f'<rect class="used" x="{LABEL_WIDTH}" y="{y + 3}" width="{_n(used_width)}" height="{BAR - 6}" '
            f'fill="{FILLS[1]}"/>'
            f'<text x="{LABEL_WIDTH + LEVEL_PLOT_WIDTH + 8}" y="{y + BAR - 4}" fill="{INK}">{escape(text)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))
