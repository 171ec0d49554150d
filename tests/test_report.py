"""`make report`: one self-contained HTML file, checked as text and as a real headless Chromium renders it."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from kube import report, results, status
from tests.helpers import launch, make_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless browser: apt-get install chromium")

# 2 models x 2 datasets x 3 seeds = 12 cells: seed 3 of `bad` fails; only `bad` has the metric `<b>odd</b>`
LAUNCH = """\
model:
  good: {command: python score.py good <seed>}
  bad: {command: python score.py bad <seed>}
dataset:
  d1: {hparam: {seed: [1, 2, 3], note: "<script>alert(1)</script>"}}
  d2: {hparam: {seed: [1, 2, 3], note: plain}}
"""
SCORE = """\
import json, sys
model, seed = sys.argv[1], int(sys.argv[2])
if model == "good":
    print("METRICS", json.dumps({"val_loss": seed}))
else:
    print("METRICS", json.dumps({"val_loss": 10, "<b>odd</b>": 1}))
sys.exit(1 if model == "bad" and seed == 3 else 0)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("report"), LAUNCH)
    (root / "score.py").write_text(SCORE)
    ran = launch(root, "local")
    assert ran.returncode == 1 and "10 succeeded, 2 failed" in ran.stderr, ran.stderr
    by_state = launch(root, "report")
    assert by_state.returncode == 0, by_state.stderr
    assert by_state.stdout.strip() == "Report of 12 cells written to build/report.html"
    state_html = (root / "build" / "report.html").read_text()
    by_metric = launch(root, "report", "--metric", "val_loss")
    assert by_metric.returncode == 0, by_metric.stderr
    return root, state_html, (root / "build" / "report.html").read_text()


def test_self_contained_and_escaped(built):
    _, html_text, metric_html = built
    for text in (html_text, metric_html):
        assert "<script" not in text and " src=" not in text and "@import" not in text and "url(" not in text
        # every http reference would be a link the user clicks, never something the page fetches
        assert all(re.search(r'<a [^>]*href="https?://', text[max(0, m.start() - 200):m.end()])
                   for m in re.finditer(r"https?:", text))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text and "&lt;b&gt;odd&lt;/b&gt;" in html_text
    assert html_text.count('class="cell"') == 12
    assert "succeeded: 10</li>" in html_text and "failed: 2</li>" in html_text
    assert html_text.count("<code>make logs name=example-") == 12


def test_metric_scale_and_missing_are_coloured_apart(built):
    _, _, text = built
    assert f"background:{report.scale_colour(0)}" in text and f"background:{report.scale_colour(1)}" in text
    assert '<td class="num missing">-</td>' in text        # the good cells have no `<b>odd</b>` metric


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """A small PNG reader (8-bit RGB or RGBA, not interlaced): width, height, pixels row by row."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        previous = line
    pixels = [tuple(line[x:x + 3]) for line in rows for x in range(0, stride, channels)]
    return width, height, pixels


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}",
                           "--window-size=900,700", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@needs_chromium
def test_chromium_renders_one_element_per_cell_and_the_state_colours(built, tmp_path):
    root, text, _ = built
    page = tmp_path / "state.html"
    page.write_text(text)
    dom = chromium(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    assert len(re.findall(r'<a class="cell"', dom.stdout)) == 12
    assert len(re.findall(r'<tr id="r-example-', dom.stdout)) == 12
    shot = tmp_path / "state.png"
    assert chromium(tmp_path, page, f"--screenshot={shot}").returncode == 0
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (900, 700)
    assert len(set(pixels)) > 20                                   # not a blank page
    counts = {state: pixels.count(hex_rgb(report.STATE_COLOURS[state])) for state in ("succeeded", "failed")}
    # 14x14 squares with rounded corners: the cells plus two swatches (counts, legend) of each colour
    assert 150 * (10 + 2) <= counts["succeeded"] <= 196 * (10 + 2)
    assert 150 * (2 + 2) <= counts["failed"] <= 196 * (2 + 2)


@needs_chromium
def test_chromium_shows_the_metric_scale(built, tmp_path):
    _, _, text = built
    page = tmp_path / "metric.html"
    page.write_text(text)
    shot = tmp_path / "metric.png"
    assert chromium(tmp_path, page, f"--screenshot={shot}").returncode == 0
    _, _, pixels = png_pixels(shot)
    low, high = hex_rgb(report.scale_colour(0)), hex_rgb(report.scale_colour(1))
    assert pixels.count(low) >= 150 and pixels.count(high) >= 150      # the lowest val_loss and the highest ones


def test_cluster_states_replace_local_ones():
    rows = [results.Row("a", "m", "d", {}, None), results.Row("b", "m", "d", {}, "failed")]
    cells = [status.Cell("a", "m", "d", "running"), status.Cell("x", "m", "d", "pending")]
    merged = report.with_cluster_states(rows, cells)
    assert [r.state for r in merged] == ["running", "failed"]
    assert "running: 1</li>" in report.build(merged)
