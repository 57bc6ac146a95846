"""Small inline SVG line charts of a scorer's mean across runs, drawn on the server."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 320, 110, 14


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One run on a chart: its id (the link), its value and the tooltip's label."""

    run_id: str
    value: float
    label: str


def scorer_chart(scorer: str, points: list[ChartPoint]) -> Markup:
    """A polyline of the values in the given (time) order; each point links to its run."""
    if not points:
        return Markup("")
    low = min(0.0, *(p.value for p in points))
    high = max(1.0, *(p.value for p in points))
    coords = [_xy(i, len(points), p.value, low, high) for i, p in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<a href="/evals/runs/{escape(p.run_id)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="4" '
        f'class="chart-dot" data-run="{escape(p.run_id)}">'
        f"<title>{escape(p.label)}: {escape(scorer)} = {p.value:.3g}</title></circle></a>"
        for p, (x, y) in zip(points, coords, strict=True)
    )
    axis = (
        f'<text x="2" y="{PAD - 3}" class="chart-axis">{high:.3g}</text>'
        f'<text x="2" y="{HEIGHT - 2}" class="chart-axis">{low:.3g}</text>'
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(scorer)} across runs">{axis}'
        f'<polyline points="{line}" class="chart-line" fill="none"/>{dots}</svg>'
    )


def _xy(index: int, count: int, value: float, low: float, high: float) -> tuple[float, float]:
    left, right = PAD + 24, WIDTH - PAD
    x = (left + right) / 2 if count == 1 else left + (right - left) * index / (count - 1)
    span = high - low or 1.0
    y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - low) / span
    return x, y
