"""A small SVG writer for the HTML pages' figures: a canvas, panels that map data to pixels, nice ticks, legends.

The figures are simple (dots per seed, means with intervals, lines per epoch, shaded bands), so they are written
as SVG text, which the page holds inline: no plotting library to import (matplotlib's import and its PNG encoder
took most of `normreg report --html`'s time; `benchmarks/html_report.py` measures both), crisp at any zoom, and
each figure carries a <title> and a <desc> for screen readers. Every text that reaches the markup goes through
`html_text`: names come from users' files and must never become markup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from normreg.render.escape import html_text

FONT = "system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
INK = "#333333"
GRID = "#e3e3e3"
FRAME = "#8c8c8c"
GLYPH = 0.6  # an average glyph's width in em, to make room for texts before a browser measures them


def fmt(x: float) -> str:
    """A coordinate in pixels: a tenth of a pixel is finer than any screen shows."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def text_width(text: str, size: float) -> float:
    """Pixels that `text` takes at font size `size`, estimated."""
    return len(text) * size * GLYPH


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def limits(values: Iterable[float | None], pad: float = 0.05) -> tuple[float, float]:
    """The range of the finite `values`, widened by `pad` of it on each side (a single value gets room too)."""
    vs = finite(values)
    if not vs:
        return 0.0, 1.0
    lo, hi = min(vs), max(vs)
    span = hi - lo
    if span <= 0:
        span = abs(lo) * 0.1 or 1.0
        return lo - span / 2, hi + span / 2
    return lo - pad * span, hi + pad * span


def nice_ticks(lo: float, hi: float, target: int = 6, integer: bool = False) -> list[float]:
    """Tick positions inside [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten, about `target` of them."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    mag = 10 ** math.floor(math.log10(span / target))
    mantissas = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in mantissas if span / (m * mag) <= target)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9)
    count = math.floor(hi / step + 1e-9) - first + 1
    return [round((first + i) * step, 12) for i in range(count)]


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The ticks written with as few decimals as tell them apart, the same number for all."""
    if not ticks:
        return []
    biggest = max(abs(t) for t in ticks)
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else biggest or 1.0
    if biggest >= 1e6 or (step < 1e-4 and biggest > 0):
        return [f"{t:.3g}" for t in ticks]
    decimals = next(d for d in range(9) if all(abs(t - round(t, d)) <= step * 1e-6 for t in ticks))
    return [f"{t:.{decimals}f}".replace("-", "−") if t != 0 else f"{0:.{decimals}f}" for t in ticks]


class Canvas:
    """An SVG document being written: shapes and texts in the order drawn (later ones on top)."""

    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height
        self.parts: list[str] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def text(self, x: float, y: float, text: str, *, size: float = 11, anchor: str = "start", color: str = INK,
             bold: bool = False, rotate: float = 0, cls: str | None = None) -> None:
        """`text` with its baseline at y (rotated by `rotate` degrees clockwise about (x, y))."""
        attrs = f'x="{fmt(x)}" y="{fmt(y)}" font-size="{fmt(size)}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if color != INK:
            attrs += f' fill="{color}"'
        if bold:
            attrs += ' font-weight="bold"'
        if rotate:
            attrs += f' transform="rotate({fmt(rotate)} {fmt(x)} {fmt(y)})"'
        if cls:
            attrs += f' class="{cls}"'
        self.parts.append(f"<text {attrs}>{html_text(text)}</text>")

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1,
             dash: str | None = None, opacity: float = 1) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        extra += f' stroke-opacity="{opacity}"' if opacity < 1 else ""
        self.parts.append(f'<line x1="{fmt(x1)}" y1="{fmt(y1)}" x2="{fmt(x2)}" y2="{fmt(y2)}" stroke="{color}" '
                          f'stroke-width="{fmt(width)}"{extra}/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, opacity: float = 1) -> None:
        extra = f' fill-opacity="{opacity}"' if opacity < 1 else ""
        self.parts.append(f'<rect x="{fmt(x)}" y="{fmt(y)}" width="{fmt(w)}" height="{fmt(h)}" fill="{fill}"{extra}/>')

    def polyline(self, points: Sequence[tuple[float, float]], color: str, width: float = 1,
                 opacity: float = 1, dash: str | None = None) -> None:
        pts = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in points)
        extra = f' stroke-opacity="{opacity}"' if opacity < 1 else ""
        extra += f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{fmt(width)}" '
                          f'stroke-linejoin="round"{extra}/>')

    def polygon(self, points: Sequence[tuple[float, float]], fill: str, opacity: float = 1) -> None:
        pts = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in points)
        self.parts.append(f'<polygon points="{pts}" fill="{fill}" fill-opacity="{opacity}"/>')

    def circle(self, x: float, y: float, r: float, color: str, *, hollow: bool = False, width: float = 1.2,
               opacity: float = 1, cls: str | None = None, tip: str | None = None) -> None:
        fill = "none" if hollow else color
        stroke = f' stroke="{color}" stroke-width="{fmt(width)}"' if width else ""
        extra = f' fill-opacity="{opacity}"' if opacity < 1 and not hollow else ""
        extra += f' class="{cls}"' if cls else ""
        shape = f'<circle cx="{fmt(x)}" cy="{fmt(y)}" r="{fmt(r)}" fill="{fill}"{stroke}{extra}'
        self.parts.append(f"{shape}><title>{html_text(tip)}</title></circle>" if tip else f"{shape}/>")

    def group(self, attrs: str) -> None:
        """Open a <g> with `attrs` (already escaped); `end_group` closes it."""
        self.parts.append(f"<g {attrs}>")

    def end_group(self) -> None:
        self.parts.append("</g>")

    def svg(self, title: str, desc: str) -> str:
        """The document as inline SVG markup, its title and description read out by screen readers."""
        w, h = math.ceil(self.width), math.ceil(self.height)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="figure" role="img" width="{w}" height="{h}" '
                f'viewBox="0 0 {w} {h}" font-family="{FONT}"><title>{html_text(title)}</title>'
                f"<desc>{html_text(desc)}</desc>" + "".join(self.parts) + "</svg>")


@dataclass
class Panel:
    """One plotting area of a canvas: pixels from (left, top), `width` by `height`, showing xlim by ylim."""

    canvas: Canvas
    left: float
    top: float
    width: float
    height: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def x(self, v: float) -> float:
        lo, hi = self.xlim
        return self.left + (v - lo) / (hi - lo) * self.width

    def y(self, v: float) -> float:
        lo, hi = self.ylim
        return self.top + (1 - (v - lo) / (hi - lo)) * self.height

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def yticks(self, ticks: Sequence[float], size: float = 10, grid: bool = True) -> None:
        """Tick labels left of the panel and, with `grid`, faint lines across it."""
        for t, label in zip(ticks, tick_labels(ticks)):
            y = self.y(t)
            if grid:
                self.canvas.line(self.left, y, self.left + self.width, y, GRID)
            self.canvas.line(self.left - 4, y, self.left, y, FRAME)
            self.canvas.text(self.left - 6, y + size * 0.35, label, size=size, anchor="end")

    def xticks(self, ticks: Sequence[tuple[float, str]], size: float = 10, rotation: float = 0, grid: bool = False,
               colors: Sequence[str] | None = None, bold: Sequence[bool] | None = None) -> None:
        """Tick labels under the panel, rotated by `rotation` degrees (rising to the right, ending at the tick)."""
        for i, (t, label) in enumerate(ticks):
            x = self.x(t)
            if grid:
                self.canvas.line(x, self.top, x, self.bottom, GRID)
            self.canvas.line(x, self.bottom, x, self.bottom + 4, FRAME)
            color = colors[i] if colors else INK
            heavy = bool(bold and bold[i])
            if rotation:
                self.canvas.text(x + 3, self.bottom + 8 + size * 0.7, label, size=size, anchor="end", rotate=-rotation,
                                 color=color, bold=heavy)
            else:
                self.canvas.text(x, self.bottom + 6 + size, label, size=size, anchor="middle", color=color, bold=heavy)

    def frame(self) -> None:
        self.canvas.add(f'<rect x="{fmt(self.left)}" y="{fmt(self.top)}" width="{fmt(self.width)}" '
                        f'height="{fmt(self.height)}" fill="none" stroke="{FRAME}" stroke-width="1"/>')

    def title(self, text: str, size: float = 13) -> None:
        self.canvas.text(self.left + self.width / 2, self.top - 7, text, size=size, anchor="middle")

    def vspan(self, x0: float, x1: float, color: str) -> None:
        self.canvas.rect(self.x(x0), self.top, self.x(x1) - self.x(x0), self.height, color)

    def hline(self, v: float, color: str, width: float = 1, dash: str | None = None) -> None:
        self.canvas.line(self.left, self.y(v), self.left + self.width, self.y(v), color, width, dash)

    def vline(self, v: float, color: str, width: float = 1, dash: str | None = None) -> None:
        self.canvas.line(self.x(v), self.top, self.x(v), self.bottom, color, width, dash)

    def errorbar(self, x: float, mean: float, low: float | None, high: float | None, color: str, *,
                 cap: float = 5, width: float = 1.6, mark: float = 0) -> None:
        """A vertical bar from `low` to `high` with caps, and with `mark` a horizontal tick `mark` px wide at
        the mean."""
        px, py = self.x(x), self.y(mean)
        if low is not None and high is not None:
            y0, y1 = self.y(low), self.y(high)
            self.canvas.line(px, y0, px, y1, color, width)
            self.canvas.line(px - cap, y0, px + cap, y0, color, width)
            self.canvas.line(px - cap, y1, px + cap, y1, color, width)
        if mark:
            self.canvas.line(px - mark / 2, py, px + mark / 2, py, color, width)

    def band(self, xs: Sequence[float], lows: Sequence[float], highs: Sequence[float], color: str,
             opacity: float) -> None:
        """A shaded area between `lows` and `highs`, broken where a value is missing (NaN)."""
        for run in _finite_runs(xs, lows, highs):
            upper = [(self.x(x), self.y(h)) for x, _, h in run]
            lower = [(self.x(x), self.y(lo)) for x, lo, _ in reversed(run)]
            self.canvas.polygon(upper + lower, color, opacity)

    def curve(self, xs: Sequence[float], ys: Sequence[float | None], color: str, *, width: float = 1,
              opacity: float = 1, dots: float = 0) -> None:
        """A line through the points, broken where a value is missing (NaN), with dots of radius `dots`."""
        for run in _finite_runs(xs, ys):
            pts = [(self.x(x), self.y(y)) for x, y in run]
            if len(pts) > 1:
                self.canvas.polyline(pts, color, width, opacity)
            for x, y in pts if dots else ():
                self.canvas.circle(x, y, dots, color, width=0, opacity=opacity)


def _finite_runs(xs: Sequence[float], *columns: Sequence[float | None]) -> list[list[tuple[float, ...]]]:
    """The rows of (x, *columns) in runs without a gap: a missing value (None, NaN, inf) ends a run."""
    runs: list[list[tuple[float, ...]]] = [[]]
    for row in zip(xs, *columns):
        if all(v is not None and math.isfinite(v) for v in row):
            runs[-1].append(row)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


# Legend entries: (kind, colour, label); kinds: "dot", "ring", "line", "dashed".
LegendItem = tuple[str, str, str]


def legend_width(items: Sequence[LegendItem], size: float = 11) -> float:
    return sum(26 + text_width(label, size) + 14 for _, _, label in items) - 14


def legend_lines(items: Sequence[LegendItem], max_width: float, size: float = 11) -> list[list[LegendItem]]:
    """The items in rows no wider than `max_width` (a row holds at least one item)."""
    lines: list[list[LegendItem]] = [[]]
    for item in items:
        if lines[-1] and legend_width([*lines[-1], item], size) > max_width:
            lines.append([])
        lines[-1].append(item)
    return [line for line in lines if line]


def legend(canvas: Canvas, items: Sequence[LegendItem], x: float, y: float, *, size: float = 11,
           column: bool = False, center: bool = False) -> None:
    """The items in a row starting at (x, y) (centred on x with `center`), or with `column` one under another."""
    if center and not column:
        x -= legend_width(items, size) / 2
    canvas.group('class="legend"')
    for kind, color, label in items:
        mid = y - size * 0.35
        if kind == "dot":
            canvas.circle(x + 10, mid, 4, color, width=0)
        elif kind == "ring":
            canvas.circle(x + 10, mid, 4.5, color, hollow=True, width=1.6)
        else:
            canvas.line(x, mid, x + 20, mid, color, 2, dash="5 3" if kind == "dashed" else None)
        canvas.text(x + 26, y, label, size=size)
        if column:
            y += size + 7
        else:
            x += 26 + text_width(label, size) + 14
    canvas.end_group()
