"""The sweep report, one self-contained HTML file: counts per state, a grid of cells per model x dataset coloured
by state or by a metric (with its legend), and the results table with each cell's logs command.

Inline CSS only: no script, no font, no image to fetch; every value from the grid or a metrics file is escaped.
Rows come from kube/results.py (local runs); `with_cluster_states` lets the states of `make status` replace them.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable, Sequence

from .naming import value_text
from .results import Row, columns, number, with_states
from .tables import number_text

REPORT_FILE = "report.html"
NO_RESULT = "no result"
STATE_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00", "running": "#1565c0",
                 "pending": "#f9a825", "not submitted": "#9e9e9e", NO_RESULT: "#bdbdbd"}
OTHER_STATE = "#6a1b9a"
MISSING_COLOUR = "#e0e0e0"
SCALE = ((0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62), (0xfd, 0xe7, 0x25))

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#212121}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.counts{display:flex;gap:16px;flex-wrap:wrap;padding:0;list-style:none}
.counts li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:14px;height:14px;border-radius:2px}
table{border-collapse:collapse}
.grid th,.grid td{border:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
.cells{display:flex;flex-wrap:wrap;gap:2px;max-width:560px}
.cell{display:block;width:14px;height:14px;border-radius:2px}
.legend{display:flex;align-items:center;gap:8px;margin:8px 0}
.bar{width:240px;height:14px;border-radius:2px}
.results td,.results th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;font-size:13px;
white-space:nowrap}
.results td.num{text-align:right;font-variant-numeric:tabular-nums}
.missing{color:#9e9e9e}
code{font-size:12px}
"""


def with_cluster_states(rows: Sequence[Row], cells: Iterable[Any]) -> list[Row]:
    """The rows with the states `make status` found (kube/status.py `Cell` rows: `.name`, `.state`)."""
    return with_states(rows, {c.name: c.state for c in cells})


def scale_colour(fraction: float) -> str:
    """A point of a viridis-like scale: 0 dark purple, 1 yellow."""
    fraction = min(max(fraction, 0.0), 1.0) * (len(SCALE) - 1)
    i = min(int(fraction), len(SCALE) - 2)
    t = fraction - i
    rgb = (round(a + (b - a) * t) for a, b in zip(SCALE[i], SCALE[i + 1]))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _state(row: Row) -> str:
    return row.state or NO_RESULT


def _state_colour(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_STATE)


def _counts(rows: Sequence[Row]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[_state(row)] = counts.get(_state(row), 0) + 1
    order = [s for s in STATE_COLOURS if s in counts] + sorted(s for s in counts if s not in STATE_COLOURS)
    items = "".join(f'<li class="count"><span class="swatch" style="background:{_state_colour(s)}"></span>'
                    f"{html.escape(s)}: {counts[s]}</li>" for s in order)
    return f'<ul class="counts">{items}</ul>'


def _colours(rows: Sequence[Row], metric: str | None) -> tuple[list[str], str]:
    """Each row's colour, and the legend that explains them."""
    if metric is None:
        present = dict.fromkeys(_state(r) for r in rows)
        legend = "".join(f'<span class="swatch" style="background:{_state_colour(s)}"></span>{html.escape(s)}'
                         for s in present)
        return [_state_colour(_state(r)) for r in rows], f'<div class="legend">{legend}</div>'
    values = [number(r.metrics.get(metric)) for r in rows]
    known = [v for v in values if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    span = high - low
    colours = [MISSING_COLOUR if v is None else scale_colour((v - low) / span if span else 0.5) for v in values]
    stops = ", ".join(scale_colour(i / 4) for i in range(5))
    legend = (f'<div class="legend"><span>{html.escape(metric)}</span><span>{html.escape(number_text(low))}'
              f'</span><span class="bar" style="background:linear-gradient(to right, {stops})"></span>'
              f"<span>{html.escape(number_text(high))}</span>"
              f'<span class="swatch" style="background:{MISSING_COLOUR}"></span><span>missing</span></div>')
    if not known:
        legend += f'<p class="missing">No cell has a number for {html.escape(metric)} yet.</p>'
    return colours, legend


def _hparam_text(row: Row) -> str:
    return " ".join(f"{k}={value_text(v)}" for k, v in row.hparams.items() if not k.startswith("_"))


def _grid(rows: Sequence[Row], colours: Sequence[str], metric: str | None) -> str:
    models = list(dict.fromkeys(r.model for r in rows))
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    cells: dict[tuple[str, str], list[str]] = {}
    esc = html.escape
    for row, colour in zip(rows, colours):
        tip = f"{row.name}\n{_hparam_text(row)}\nstate: {_state(row)}"
        if metric is not None:
            tip += f"\n{metric}: {number_text(row.metrics.get(metric))}"
        cells.setdefault((row.model, row.dataset), []).append(
            f'<a class="cell" href="#r-{esc(row.name)}" title="{esc(tip)}" style="background:{colour}"></a>')
    head = "<tr><th></th>" + "".join(f"<th>{esc(d)}</th>" for d in datasets) + "</tr>"
    body = "".join("<tr><th>" + esc(m) + "</th>" + "".join(
        f'<td><div class="cells">{"".join(cells.get((m, d), []))}</div></td>' for d in datasets) + "</tr>"
        for m in models)
    return f'<table class="grid">{head}{body}</table>'


def _table(rows: Sequence[Row]) -> str:
    hparams, metrics = columns(rows)
    esc = html.escape
    heads = ["name", "model", "dataset", *hparams, "state", *metrics, "logs"]
    out = ['<table class="results"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>"]
    for row in rows:
        name = esc(row.name)
        parts = [f'<tr id="r-{name}"><td>{name}</td><td>{esc(row.model)}</td><td>{esc(row.dataset)}</td>']
        parts += [f"<td>{esc(value_text(row.hparams[h]))}</td>" if h in row.hparams else "<td></td>" for h in hparams]
        parts.append(f"<td>{esc(_state(row))}</td>")
        for m in metrics:
            value = row.metrics.get(m)
            parts.append('<td class="num missing">-</td>' if value is None else
                         f'<td class="num">{esc(number_text(value))}</td>')
        parts.append(f"<td><code>make logs name={name}</code></td></tr>")
        out.append("".join(parts))
    out.append("</table>")
    return "\n".join(out)


def build(rows: Sequence[Row], metric: str | None = None, title: str = "") -> str:
    """The whole page as text (no file access)."""
    colours, legend = _colours(rows, metric)
    heading = html.escape(f"{title}: " if title else "") + f"{len(rows)} cells"
    coloured = f"coloured by {html.escape(metric)}" if metric else "coloured by state"
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title or 'Report')}</title><style>{STYLE}</style></head><body>",
        f"<h1>{heading}</h1>", _counts(rows),
        f"<h2>Cells per model and dataset, {coloured}</h2>", legend, _grid(rows, colours, metric),
        "<h2>Results</h2>", _table(rows), "\n</body></html>\n"])


def write(root: Path, text: str) -> Path:
    """build/report.html, replaced atomically."""
    target = root / "build" / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return target
