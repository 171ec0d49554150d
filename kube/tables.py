"""Presentation of result rows: a terminal table that fits the width (colour only on a terminal), CSV, JSON and
Markdown. Missing values are shown as missing (`-`, an empty CSV field, null), never as zero."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TextIO

from .errors import UsageError
from .naming import value_text
from .results import Row, Stat, columns

FORMATS = ("table", "csv", "json", "markdown")
DEFAULT_WIDTH = 100
MISSING = "-"
COLOURS = {"succeeded": "32", "failed": "31", "interrupted": "33", "running": "34", "pending": "33"}


def terminal(stream: TextIO = sys.stdout) -> tuple[bool, int]:
    """(colour?, width): colour only on a terminal without NO_COLOR; the width of the terminal (COLUMNS wins),
    100 when the output is not one."""
    tty = hasattr(stream, "isatty") and stream.isatty()
    colour = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    return colour, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def number_text(value: Any) -> str:
    """How a metric reads in a table: 6 significant digits, booleans and null in YAML's spelling."""
    if isinstance(value, Stat):
        if value.mean is None:
            return MISSING
        return number_text(value.mean) + (f" ± {value.std:.2g}" if value.std is not None else "")
    if value is None:
        return MISSING
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return value_text(value)


def _grouped(rows: Sequence[Row]) -> bool:
    return any(r.members for r in rows)


def _states(rows: Sequence[Row]) -> bool:
    return any(r.state for r in rows)


# --- machine-readable -------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A JSON value: non-finite numbers are no numbers (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def as_json(rows: Sequence[Row]) -> str:
    hparams, metrics = columns(rows)
    out = []
    for row in rows:
        item: dict[str, Any] = {"model": row.model, "dataset": row.dataset, "hparams": dict(row.hparams),
                                "state": row.state}
        if row.members:
            item["cells"] = list(row.members)
            item["metrics"] = {}
            for m in metrics:
                stat = row.metrics.get(m)
                item["metrics"][m] = ({"mean": _plain(stat.mean), "std": _plain(stat.std), "n": stat.n}
                                      if isinstance(stat, Stat) else None)
        else:
            item = {"name": row.name, **item, "metrics": {m: _plain(row.metrics.get(m)) for m in metrics}}
        out.append(item)
    return json.dumps(out, indent=2, default=value_text) + "\n"


def _csv_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return repr(value)                   # the shortest text that reads back as the same number
    return value_text(value)


def as_csv(rows: Sequence[Row]) -> str:
    hparams, metrics = columns(rows)
    grouped = _grouped(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_heads = [f"{m} {part}" for m in metrics for part in ("mean", "std")] if grouped else metrics
    writer.writerow([*([] if grouped else ["name"]), "model", "dataset", *hparams,
                     *(["cells"] if grouped else []), "state", *metric_heads])
    for row in rows:
        values: list[Any] = [] if grouped else [row.name]
        values += [row.model, row.dataset, *(row.hparams.get(h) for h in hparams)]
        if grouped:
            values.append(len(row.members))
        values.append(row.state)
        for m in metrics:
            value = row.metrics.get(m)
            if grouped:
                values += [value.mean, value.std] if isinstance(value, Stat) else [None, None]
            else:
                values.append(value)
        writer.writerow([_csv_text(v) for v in values])
    return buffer.getvalue()


# --- for people -------------------------------------------------------------------------------------------------

@dataclass
class Column:
    head: str
    cells: list[str]
    shrink: int            # 0: never cut; higher: cut first
    minimum: int
    middle: bool = False   # cut in the middle (names keep their hash)
    right: bool = False    # numbers align right
    colour: Callable[[str], str | None] | None = None
    short: list[str] | None = None    # shorter texts to show before cutting (numbers with fewer digits)

    @property
    def natural(self) -> int:
        return max([len(self.head), *(len(c) for c in self.cells)])


def cut(text: str, width: int, middle: bool = False, ellipsis: str = "…") -> str:
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    if middle:
        tail = min(9, width - len(ellipsis) - 1) if width > 12 else (width - len(ellipsis)) // 2
        return text[:width - len(ellipsis) - tail] + ellipsis + text[len(text) - tail:]
    return text[:width - len(ellipsis)] + ellipsis


def _people_columns(rows: Sequence[Row]) -> list[Column]:
    hparams, metrics = columns(rows)
    grouped = _grouped(rows)
    cols = []
    if not grouped:         # a name repeats the hparams: it is cut first, in the middle, keeping its hash
        cols.append(Column("NAME", [r.name for r in rows], 3, 14, middle=True))
    cols += [Column("MODEL", [r.model for r in rows], 1, 6), Column("DATASET", [r.dataset for r in rows], 1, 7)]
    for h in hparams:
        values = [r.hparams.get(h, "") for r in rows]
        # numbers are never cut: a narrow column shows them with 4 significant digits instead
        short = [f"{v:.4g}" if isinstance(v, float) else value_text(v) if isinstance(v, int) else "" for v in values]
        minimum = max([5, *(len(t) for t in short)])
        cols.append(Column(h, [value_text(v) if v != "" else "" for v in values], 2, minimum, short=short))
    if grouped:
        cols.append(Column("CELLS", [str(len(r.members)) for r in rows], 0, 5, right=True))
    if _states(rows) or not metrics:
        cols.append(Column("STATE", [r.state or MISSING for r in rows], 0, 5,
                           colour=lambda s: COLOURS.get(s.split()[-1] if s else "")))
    cols += [Column(m, [number_text(r.metrics.get(m)) for r in rows], 1, 6, right=True) for m in metrics]
    return cols


def _fit(cols: list[Column], width: int) -> tuple[list[Column], list[int]]:
    """Natural widths, then cut the most cuttable columns one character at a time until the line fits."""
    widths = [c.natural for c in cols]

    def total() -> int:
        return sum(widths) + 2 * (len(widths) - 1)
    for level in (3, 2, 1):
        while total() > width:
            candidates = [i for i, c in enumerate(cols) if c.shrink >= level and widths[i] > c.minimum]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            widths[widest] -= 1
        if total() <= width:
            break
    if total() > width and cols and cols[0].head == "NAME":        # still too wide: the name goes first
        return _fit(cols[1:], width)
    return cols, widths


def as_table(rows: Sequence[Row], colour: bool = False, width: int = DEFAULT_WIDTH,
             stream_encoding: str = "utf-8") -> str:
    ellipsis = "…" if stream_encoding.lower().replace("-", "").startswith("utf") else "~"
    cols, widths = _fit(_people_columns(rows), width)
    lines = []
    heads = [cut(c.head, w, ellipsis=ellipsis).ljust(w) for c, w in zip(cols, widths)]
    lines.append("  ".join(heads).rstrip())
    if colour:
        lines[0] = f"\x1b[1m{lines[0]}\x1b[0m"
    for i in range(len(rows)):
        cells = []
        for c, w in zip(cols, widths):
            text = c.cells[i]
            if len(text) > w and c.short and c.short[i] and len(c.short[i]) <= w:
                text = c.short[i]
            text = cut(text, w, c.middle, ellipsis)
            text = text.rjust(w) if c.right else text.ljust(w)
            code = c.colour(c.cells[i]) if colour and c.colour else None
            if colour and c.cells[i] == MISSING:
                code = "2"
            cells.append(f"\x1b[{code}m{text}\x1b[0m" if code else text)
        lines.append("  ".join(cells).rstrip())
    if ellipsis != "…":
        lines = [line.replace("±", "+-") for line in lines]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def as_markdown(rows: Sequence[Row]) -> str:
    cols = _people_columns(rows)
    lines = ["| " + " | ".join(_md(c.head) for c in cols) + " |",
             "|" + "|".join("---:" if c.right else "---" for c in cols) + "|"]
    for i in range(len(rows)):
        lines.append("| " + " | ".join(_md(c.cells[i]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def render(rows: Sequence[Row], fmt: str = "table", stream: TextIO = sys.stdout) -> str:
    """The rows in one of FORMATS; the table fits `stream`'s terminal and is coloured only on one."""
    check_format(fmt)
    if fmt == "csv":
        return as_csv(rows)
    if fmt == "json":
        return as_json(rows)
    if fmt == "markdown":
        return as_markdown(rows)
    colour, width = terminal(stream)
    return as_table(rows, colour, width, getattr(stream, "encoding", None) or "utf-8")
