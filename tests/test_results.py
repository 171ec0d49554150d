"""Results: RESULTS_DIR, metrics.json or METRICS lines captured by `make local`, and `make results` in every format."""
from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys

import pytest

from kube import config, grid, results, tables
from tests.helpers import ROOT, launch, make_project

TRAIN = """\
import json, os, sys
mode, seed = sys.argv[1], int(sys.argv[2])
loss = {1: 1.0, 2: 2.0, 3: 3.0}[seed] * (1 if mode == "file" else 10)
if mode == "file":
    with open(os.path.join(os.environ["RESULTS_DIR"], "metrics.json"), "w") as f:
        json.dump({"val_loss": loss, "acc": 0.5 + seed}, f)
elif mode == "lines":
    print("METRICS", json.dumps({"val_loss": 99}))
    print("epoch 1 done", flush=True)
    print("METRICS", json.dumps({"acc": seed / 4, "val_loss": loss}))
elif mode == "both":
    with open(os.path.join(os.environ["RESULTS_DIR"], "metrics.json"), "w") as f:
        json.dump({"val_loss": 0.125}, f)
    print("METRICS", json.dumps({"val_loss": 7}))
print("results in", os.environ["RESULTS_DIR"])
sys.exit(3 if mode == "crash" else 0)
"""

def project(tmp_path):
    root = make_project(tmp_path, """\
        model:
          file: {command: python train.py file <seed>, hparam: {seed: [1, 2]}}
          lines: {command: python train.py lines <seed>, hparam: {seed: [1, 2]}}
          quiet: {command: python train.py quiet <seed>, hparam: {seed: [1, 2]}}
          both: {command: python train.py both <seed>, hparam: {seed: [1]}}
          crash: {command: python train.py crash <seed>, hparam: {seed: [1]}}
        """)
    (root / "train.py").write_text(TRAIN)
    return root


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One project, `make local` run once (through make, as a user does), shared by the tests below."""
    root = project(tmp_path_factory.mktemp("results"))
    for name in ("Makefile", "launch.py"):
        (root / name).symlink_to(ROOT / name)
    done = subprocess.run(["make", "--no-print-directory", "local", f"PYTHON={sys.executable}"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "7 succeeded, 1 failed: example-crash-" in done.stderr, done.stderr
    assert "epoch 1 done" in done.stdout          # the output still reaches the terminal
    cfg = config.load(root)
    return root, {(r.model, r.hparams["seed"]): r.name for r in grid.build_runs(cfg)}


def make(root, *args):
    # os.environ given explicitly: readline (imported by pytest) may have put COLUMNS into the C environment
    return subprocess.run(["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"], cwd=root,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def rows_json(root, *args):
    result = launch(root, "results", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_results_dir_and_files_left_by_make_local(ran):
    root, names = ran
    lines_dir = root / "results" / names[("lines", 1)]
    assert json.loads((lines_dir / "metrics.json").read_text()) == {"val_loss": 10.0, "acc": 0.25}
    assert (lines_dir / "exit_status").read_text() == "0\n"
    assert (root / "results" / names[("crash", 1)] / "exit_status").read_text() == "3\n"
    assert not (root / "results" / names[("quiet", 1)] / "metrics.json").exists()
    both = json.loads((root / "results" / names[("both", 1)] / "metrics.json").read_text())
    assert both == {"val_loss": 0.125}                       # the command's own file wins over METRICS lines


def test_make_results_rows_and_values_are_exact_for_a_2x2_grid(ran):
    root, names = ran
    rows = rows_json(root, "--only", "model=file,lines")
    assert [(r["name"], r["model"], r["hparams"], r["state"], r["metrics"]) for r in rows] == [
        (names[("file", 1)], "file", {"seed": 1}, "succeeded", {"val_loss": 1.0, "acc": 1.5}),
        (names[("file", 2)], "file", {"seed": 2}, "succeeded", {"val_loss": 2.0, "acc": 2.5}),
        (names[("lines", 1)], "lines", {"seed": 1}, "succeeded", {"val_loss": 10.0, "acc": 0.25}),
        (names[("lines", 2)], "lines", {"seed": 2}, "succeeded", {"val_loss": 20.0, "acc": 0.5}),
    ]


def test_csv_reads_back_as_the_same_numbers_and_missing_is_empty(ran):
    root, names = ran
    result = make(root, "results", "format=csv")
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(table[0]) == ["name", "model", "dataset", "seed", "state", "val_loss", "acc"]
    by_name = {r["name"]: r for r in table}
    for row in rows_json(root):
        for metric in ("val_loss", "acc"):
            value = row["metrics"][metric]
            assert by_name[row["name"]][metric] == ("" if value is None else repr(value))
            if value is not None:
                assert float(by_name[row["name"]][metric]) == value
    assert by_name[names[("quiet", 1)]]["val_loss"] == "" and by_name[names[("crash", 1)]]["state"] == "failed"


def test_cell_without_metrics_is_missing_never_zero(ran):
    root, names = ran
    quiet = [r for r in rows_json(root) if r["model"] == "quiet"]
    assert [r["metrics"] for r in quiet] == [{"val_loss": None, "acc": None}] * 2
    assert [r["state"] for r in quiet] == ["succeeded"] * 2
    table = make(root, "results", "only=model=file,quiet").stdout.splitlines()
    assert table[0].split() == ["NAME", "MODEL", "DATASET", "seed", "STATE", "val_loss", "acc"]
    assert [line.split()[-2:] for line in table[1:]] == [["1", "1.5"], ["2", "2.5"], ["-", "-"], ["-", "-"]]
    markdown = make(root, "results", "only=model=file,quiet", "format=markdown").stdout.splitlines()
    assert markdown[4].endswith("| succeeded | - | - |") and markdown[1] == "|---|---|---|---|---|---:|---:|"


def test_best_picks_the_right_cell(ran):
    root, names = ran
    assert [r["name"] for r in rows_json(root, "--best", "val_loss:min")] == [names[("both", 1)]]
    assert [r["name"] for r in rows_json(root, "--best", "acc:max")] == [names[("file", 2)]]
    through_make = make(root, "results", "best=val_loss:max", "only=model=file,lines")
    assert through_make.returncode == 0 and names[("lines", 2)] in through_make.stdout
    assert len(through_make.stdout.splitlines()) == 2


def test_sort_descending_keeps_missing_last(ran):
    root, names = ran
    result = make(root, "results", "sort=-val_loss", "format=json")
    order = [(r["model"], r["hparams"]["seed"]) for r in json.loads(result.stdout)]
    assert order[:6] == [("lines", 2), ("lines", 1), ("file", 2), ("file", 1), ("both", 1)] + [order[5]]
    assert {m for m, _ in order[5:]} == {"quiet", "crash"}


def test_group_gives_mean_and_std_over_an_axis(ran, tmp_path):
    root, _ = ran
    local = launch(root, "local", "--only", "model=file", "--set", "seed=1,2,3")
    assert local.returncode == 0, local.stderr
    rows = rows_json(root, "--only", "model=file,lines", "--set", "seed=1,2,3", "--group", "seed")
    assert [(r["model"], r["hparams"], len(r["cells"])) for r in rows] == [("file", {}, 3), ("lines", {}, 3)]
    assert rows[0]["metrics"] == {"val_loss": {"mean": 2.0, "std": 1.0, "n": 3},
                                  "acc": {"mean": 2.5, "std": 1.0, "n": 3}}
    # lines never ran with seed=3: two values, the third cell is missing and not counted as zero
    assert rows[1]["metrics"]["val_loss"] == {"mean": 15.0, "std": 7.0710678118654755, "n": 2}
    assert rows[1]["state"] == "2 succeeded, 1 unknown"
    table = launch(root, "results", "--only", "model=file", "--set", "seed=1,2,3", "--group", "seed").stdout
    assert "2 ± 1" in table and "2.5 ± 1" in table


@pytest.mark.parametrize("args, words", [
    pytest.param(["--sort", "val_los"], "sort: unknown column 'val_los'; did you mean 'val_loss'?", id="sort"),
    pytest.param(["--best", "acc:best"], "best: expected METRIC:min or METRIC:max", id="best-goal"),
    pytest.param(["--best", "accc:max"], "best: unknown metric 'accc'; did you mean 'acc'?", id="best"),
    pytest.param(["--group", "sed"], "group: unknown hparam 'sed'; did you mean 'seed'?", id="group"),
    pytest.param(["--format", "xml"], "format: expected one of table, csv, json, markdown", id="format"),
])
def test_bad_arguments_are_one_line_errors(ran, args, words):
    result = launch(ran[0], "results", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {words}") and result.stderr.count("\n") == 1


def test_results_setting_moves_the_folder_and_a_bad_metrics_file_is_a_warning(tmp_path):
    root = project(tmp_path)
    (root / "config" / "launch.yaml").write_text("results: out/runs\n" + (root / "config" / "launch.yaml").read_text())
    assert launch(root, "local", "--only", "model=lines seed=1").returncode == 0
    name = grid.build_runs(config.load(root), "model=lines seed=1")[0].name
    assert json.loads((root / "out" / "runs" / name / "metrics.json").read_text())["val_loss"] == 10.0
    (root / "out" / "runs" / name / "metrics.json").write_text("{not json")
    result = launch(root, "results", "--only", "model=lines seed=1", "--format", "json")
    assert result.returncode == 0 and "metrics.json: not readable as JSON" in result.stderr
    assert json.loads(result.stdout)[0]["metrics"] == {}


def wide_rows(n=6):
    long = "a-rather-long-hyperparameter-value-that-would-never-fit-" * 2
    return [results.Row(f"example-some-model-name-data-{i}-abcdefgh", "some-model-name", "dataset-with-long-name",
                        {"text": f"{long}{i}", "lr": 0.001 * (i + 1), "note": "x" * 40}, "succeeded",
                        {"val_loss": 1 / (i + 1), "accuracy": 0.5, "train_loss_final": 123.456789})
            for i in range(n)]


def test_terminal_table_fits_100_columns_and_has_no_colour_off_a_terminal(tmp_path):
    text = tables.as_table(wide_rows(), colour=False, width=100)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100 and "\x1b" not in text
    assert "…" in lines[1] and lines[1].split()[-3:] == ["1", "0.5", "123.457"]
    assert all(f"{0.001 * (i + 1):.4g}" in line.split() for i, line in enumerate(lines[1:]))   # numbers never cut
    root = project(tmp_path)
    launch(root, "local", "--only", "model=file")
    piped = launch(root, "results", env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout


def test_colour_only_on_a_terminal(tmp_path):
    root = project(tmp_path)
    launch(root, "local", "--only", "model=file,crash")
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "results"], cwd=root, stdout=child,
                            stderr=subprocess.PIPE, env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    text = b"".join(chunks).decode()
    assert "\x1b[32m" in text and "\x1b[31m" in text                  # succeeded green, failed red
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in text.splitlines()) <= 100


def test_unit_helpers_flatten_and_capture_split_chunks():
    capture = results.Capture()
    for chunk in (b"METR", b"ICS {\"a\": {\"b\": 1}}\nnoise\nMETRICS [1]\r\nMETRICS {\"c\": 2", b"}"):
        capture.feed(chunk)
    capture.close()
    assert capture.metrics == {"a.b": 1, "c": 2}
    assert capture.problems == ["a METRICS line is not a JSON object: '[1]'"]
