"""The growth curve as a picture: ``market-data bench growth --chart growth.svg``.

One panel per series (symbols, depth, subscribers), all on one CPU scale so
that their slopes compare at a glance: each point's median CPU per frame, the
range of its runs as a bar, and the band a flat curve stays in (within
``FLAT_WITHIN`` of the first point doing the same work as the last). A point
that conflates (fewer publications per frame than the last) is drawn hollow:
its work per frame is not the same, so the band does not judge it. Plain SVG,
written by hand: no plotting library for one chart.
"""

from collections.abc import Sequence
from html import escape

from market_data.bench.growth import FLAT_WITHIN, SERIES, Point, same_work

PANEL_W, PANEL_H = 300, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 44, 58
_INK, _MUTED, _BAND, _GRID = "#1f2937", "#6b7280", "#d1fae5", "#e5e7eb"
_SERIES_TITLES = {
    "symbols": "symbols",
    "depth": "book depth (levels a side)",
    "subscribers": "subscribers",
}


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** len(str(int(value))) / 10.0
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value:
            return step * power
    return 10.0 * power  # pragma: no cover - the loop ends at 10


def _text(x: float, y: float, content: str, **attributes: str) -> str:
    extra = "".join(f' {name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def _panel(series: str, points: Sequence[Point], y_max: float, left: float) -> list[str]:
    """One series' panel, ``left`` pixels from the chart's left edge."""
    plot_w = PANEL_W - LEFT - RIGHT
    plot_h = PANEL_H - TOP - BOTTOM
    x0, y0 = left + LEFT, TOP + plot_h  # the plot's bottom-left corner

    def x_of(index: int) -> float:
        return x0 + plot_w * (index + 0.5) / len(points)

    def y_of(value: float) -> float:
        return y0 - plot_h * min(value, y_max) / y_max

    parts = [f'<g class="series" data-series="{series}">']
    parts.append(
        _text(left + PANEL_W / 2, 20, _SERIES_TITLES.get(series, series), text_anchor="middle")
    )
    for tick in range(5):  # grid and the CPU scale
        value = y_max * tick / 4
        y = y_of(value)
        parts.append(
            f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x0 + plot_w:.1f}" y2="{y:.1f}" '
            f'stroke="{_GRID}"/>'
        )
        parts.append(_text(x0 - 6, y + 4, f"{value:g}", text_anchor="end", fill=_MUTED))
    last = points[-1]
    comparable = next(p for p in points if same_work(p, last))
    if comparable is not last:  # the band a flat curve stays in
        low, high = comparable.cpu_us_per_frame, comparable.cpu_us_per_frame * FLAT_WITHIN
        parts.append(
            f'<rect class="flat-band" x="{x0:.1f}" y="{y_of(high):.1f}" width="{plot_w:.1f}" '
            f'height="{y_of(low) - y_of(high):.1f}" fill="{_BAND}"/>'
        )
    medians = " ".join(
        f"{x_of(i):.1f},{y_of(p.cpu_us_per_frame):.1f}" for i, p in enumerate(points)
    )
    parts.append(f'<polyline points="{medians}" fill="none" stroke="{_INK}" stroke-width="1.5"/>')
    for index, point in enumerate(points):
        x = x_of(index)
        low, high = point.cpu_range
        same = same_work(point, last)
        parts.append(
            f'<line class="range" x1="{x:.1f}" y1="{y_of(low):.1f}" x2="{x:.1f}" '
            f'y2="{y_of(high):.1f}" stroke="{_INK}" stroke-width="3" stroke-opacity="0.35"/>'
        )
        parts.append(
            f'<circle class="{"median" if same else "median conflated"}" cx="{x:.1f}" '
            f'cy="{y_of(point.cpu_us_per_frame):.1f}" r="4.5" stroke="{_INK}" '
            f'stroke-width="1.5" fill="{_INK if same else "white"}"/>'
        )
        parts.append(
            _text(x + 8, y_of(point.cpu_us_per_frame) - 6, f"{point.cpu_us_per_frame:.0f}")
        )
        parts.append(_text(x, y0 + 18, f"{point.value:,}", text_anchor="middle"))
        parts.append(_text(x, y0 + 34, f"{point.rss_mb:.0f} MB", text_anchor="middle", fill=_MUTED))
    parts.append("</g>")
    return parts


def growth_svg(points: Sequence[Point], rate: float) -> str:
    """The chart of ``points`` (as ``run_all`` measured them at ``rate`` frames/s)."""
    series = [s for s in SERIES if any(p.series == s for p in points)]
    if not series:
        raise ValueError("no point to draw")
    y_max = _nice_ceiling(max(p.cpu_range[1] for p in points) * 1.1)
    width, height = PANEL_W * len(series), PANEL_H + 44
    runs = len(points[0].runs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" '
        f'fill="{_INK}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f"<title>market-data bench growth: CPU per frame at {rate:,.0f} frames/s</title>",
    ]
    for index, name in enumerate(series):
        chosen = [p for p in points if p.series == name]
        parts.extend(_panel(name, chosen, y_max, index * PANEL_W))
    notes = (
        f"The service's CPU μs per frame at {rate:,.0f} frames/s in all: median of {runs} "
        "run(s), the bar their range, RSS below each point.",
        f"Green: within {FLAT_WITHIN:.2f}x of the first point doing the same work as the "
        "last. Hollow: a conflated point (fewer books per frame), not judged.",
    )
    for line, note in enumerate(notes):
        parts.append(_text(8, height - 24 + 15 * line, note, fill=_MUTED, font_size="11"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
