"""Which Jobs a selection becomes, pure: one Job a cell, cells packed N to a Job, or Indexed arrays of them.

Cells can share a Job only when their settings are equal (one pod template). A *unit* is what one pod runs:
one cell, or `shared` cells at once. Without `max_parallel` each unit is a Job; with it, the units of a group
form one Indexed Job whose index i runs unit i, its script read from a ConfigMap by JOB_COMPLETION_INDEX.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import shlex
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

from . import checkpoints, ownership, remote_results
from .errors import ConfigError
from .results import shell_export
from .naming import sanitize
from .settings import Project, Run, RunSettings

WorkloadKind = Literal["cell", "pack", "array"]
ANNOTATION_CELLS = "kube-toolbox/cells"     # units separated by spaces, the cells of a unit by "+"
CELLS_MOUNT = "/etc/toolbox/cells"
CELLS_FILE = "cells.tgz"
MAX_INDEXES = 100_000                # completions of an Indexed Job with backoffLimitPerIndex (API server limit)
MAX_CELLS_BYTES = 900 * 1024         # the cells ConfigMap's binaryData, under the 1 MiB object limit
RESULTS = "${KUBE_TOOLBOX_RESULTS:-/dev/termination-log}"


def cell_id(name: str) -> str:
    """The hash that ends every cell name: short, unique per combination and user."""
    return name.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class Workload:
    """One Job to submit: its kind, name, the units it runs (each a tuple of cells) and their settings."""

    kind: WorkloadKind
    name: str
    units: tuple[tuple[Run, ...], ...]
    settings: RunSettings
    parallelism: int | None = None          # an array's share of max_parallel

    @property
    def cells(self) -> list[Run]:
        return [run for unit in self.units for run in unit]

    def cells_annotation(self) -> str:
        return " ".join("+".join(cell_id(r.name) for r in unit) for unit in self.units)

    def labels(self, project: Project) -> dict[str, str]:
        """The owner labels, and model/dataset when every cell shares them."""
        labels = ownership.labels(project)
        for key in ("model", "dataset"):
            values = {r.labels[key] for r in self.cells}
            if len(values) == 1:
                labels[key] = values.pop()
        return labels


def _name(kind: str, runs: Sequence[Run], project: Project) -> str:
    first = runs[0]
    same = all(r.model == first.model for r in runs), all(r.dataset == first.dataset for r in runs)
    parts = [first.settings.prefix, project.project_name, first.model if same[0] else "",
             first.dataset if same[1] else "", kind]
    readable = "-".join(p for p in (sanitize(x) for x in parts) if p)[:54].rstrip("-")
    return ownership.workload_name(readable, project, [r.name for r in runs])


def plan_workloads(runs: Sequence[Run], project: Project) -> list[Workload]:
    """Group the cells by settings (first appearance order), pack, and make arrays where asked: an array is
    split where the API server's limits need it (indexes, ConfigMap size), and the arrays that share a
    `max_parallel` share it: together they never run more than that many units at once."""
    groups: dict[RunSettings, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.settings, []).append(run)
    out: list[Workload] = []
    for settings, cells in groups.items():
        size = max(settings.shared, 1)
        units = [tuple(cells[i:i + size]) for i in range(0, len(cells), size)]
        if settings.max_parallel:
            for part in _fitting(units):
                members = [r for unit in part for r in unit]
                out.append(Workload("array", _name("array", members, project), tuple(part), settings))
            continue
        for unit in units:
            if len(unit) == 1:
                out.append(Workload("cell", unit[0].name, (unit,), settings))
            else:
                out.append(Workload("pack", _name(f"pack{len(unit)}", unit, project), (unit,), settings))
    return _share_parallelism(out)


def _fitting(units: list[tuple[Run, ...]]) -> list[list[tuple[Run, ...]]]:
    """Units cut into arrays the API server accepts: at most MAX_INDEXES indexes, a cells ConfigMap that fits."""
    if len(units) > MAX_INDEXES:
        return [p for i in range(0, len(units), MAX_INDEXES) for p in _fitting(units[i:i + MAX_INDEXES])]
    if len(units) > 1 and 4 * ((len(_archive(units)) + 2) // 3) > MAX_CELLS_BYTES:
        half = len(units) // 2
        return _fitting(units[:half]) + _fitting(units[half:])
    return [units]


def _share_parallelism(planned: list[Workload]) -> list[Workload]:
    """Each array's parallelism: its share (by units) of the max_parallel it has in common with other arrays."""
    by_cap: dict[int, list[int]] = {}
    for i, w in enumerate(planned):
        if w.kind == "array" and w.settings.max_parallel:
            by_cap.setdefault(w.settings.max_parallel, []).append(i)
    out = list(planned)
    for cap, members in by_cap.items():
        if len(members) > cap:
            raise ConfigError("config/launch.yaml", "max_parallel",
                              f"expected at least {len(members)}: the selected cells form {len(members)} arrays "
                              f"(their settings differ, or an array would exceed the API server's limits) and each "
                              f"runs at least one cell at a time, so {cap} at once cannot hold")
        sizes = [len(planned[i].units) for i in members]
        shares = [min(n, max(1, cap * n // sum(sizes))) for n in sizes]
        spare = cap - sum(shares)
        for j in sorted(range(len(members)), key=lambda j: sizes[j] - shares[j], reverse=True):
            extra = max(0, min(spare, sizes[j] - shares[j]))
            shares[j] += extra
            spare -= extra
        for i, share in zip(members, shares):
            out[i] = dataclasses.replace(planned[i], parallelism=share)
    return out


def forwarding(command: str) -> str:
    """The command in a process group of its own, with SIGTERM/SIGINT passed on to all of it: the container's
    first process (this shell) gets the kubelet's SIGTERM on preemption, eviction or a deadline, and as PID 1 it
    would otherwise ignore it, leaving the command no chance to save before SIGKILL. Its status ends up in
    $kube_toolbox_status."""
    return ("set -m\n(\n" + command + "\n) &\nkube_toolbox_pid=$!\nset +m\n"
            "trap 'kill -TERM -- -\"$kube_toolbox_pid\" 2>/dev/null' TERM INT\n"
            "wait \"$kube_toolbox_pid\"; kube_toolbox_status=$?\n"
            "while kill -0 \"$kube_toolbox_pid\" 2>/dev/null; do\n"
            "  wait \"$kube_toolbox_pid\"; kube_toolbox_status=$?\ndone\n"
            "trap - TERM INT\n")


def unit_script(unit: Sequence[Run]) -> str:
    """What one pod runs for one unit: the command itself, or every packed cell at once, prefixed by name.

    Each cell's command first gets its results folder as `$RESULTS_DIR` (kube/results.py).
    """
    if len(unit) == 1:
        run = unit[0]
        return (shell_export(run) + checkpoints.restore_lines(run) + forwarding(run.remote_command) +
                remote_results.upload_lines(run) + "exit \"$kube_toolbox_status\"\n")
    lines = ["kube_toolbox_prefix() { while IFS= read -r line || [ -n \"$line\" ]; do "
             "printf '[%s] %s\\n' \"$1\" \"$line\"; done; }"]
    for i, run in enumerate(unit):
        lines += [f"kube_toolbox_cell_{i}() {{", shell_export(run).rstrip("\n"), run.remote_command, "}"]
    lines.append("kube_toolbox_pids=()")
    for i, run in enumerate(unit):
        lines.append(f"( set -o pipefail; kube_toolbox_cell_{i} 2>&1 | kube_toolbox_prefix {shlex.quote(run.name)} ) "
                     f"& kube_toolbox_pids+=($!)")
    names = " ".join(shlex.quote(r.name) for r in unit)
    lines += [f"kube_toolbox_names=({names})", "kube_toolbox_status=0",
              f": > \"{RESULTS}\" 2>/dev/null || true",
              "for i in \"${!kube_toolbox_pids[@]}\"; do",
              "  if wait \"${kube_toolbox_pids[$i]}\"; then code=0; else code=$?; kube_toolbox_status=1; fi",
              f"  echo \"${{kube_toolbox_names[$i]}}=$code\" >> \"{RESULTS}\" 2>/dev/null || true",
              "  echo \"kube-toolbox: ${kube_toolbox_names[$i]} exited with $code\"",
              "done", "exit $kube_toolbox_status"]
    return "\n".join(lines) + "\n"


def array_dispatch() -> str:
    """The command of an Indexed Job: fetch this index's unit script from the mounted ConfigMap and run it."""
    return (f"kube_toolbox_unit=\"/tmp/kube-toolbox-unit-$JOB_COMPLETION_INDEX.sh\"\n"
            f"tar -xzOf {CELLS_MOUNT}/{CELLS_FILE} \"$JOB_COMPLETION_INDEX.sh\" > \"$kube_toolbox_unit\" || "
            f"{{ echo \"kube-toolbox: no command for index $JOB_COMPLETION_INDEX\" >&2; exit 1; }}\n"
            f". \"$kube_toolbox_unit\"\n")


def cells_archive(workload: Workload) -> bytes:
    """`<i>.sh` for each unit, as a gzipped tar that does not depend on when it was made (stable names)."""
    return _archive(workload.units)


def _archive(units: Sequence[tuple[Run, ...]]) -> bytes:
    import gzip
    import tarfile
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i, unit in enumerate(units):
                data = (f"echo \"kube-toolbox: index $JOB_COMPLETION_INDEX runs "
                        f"{' '.join(r.name for r in unit)}\"\n" + unit_script(unit)).encode()
                for name, content in ((f"{i}.sh", data), (f"{i}.cell", " ".join(r.name for r in unit).encode())):
                    info = tarfile.TarInfo(name)          # `.cell`: which cell an index runs (the checkpoint sidecar)
                    info.size, info.mode, info.mtime = len(content), 0o644, 0
                    tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def cells_configmap(workload: Workload, project: Project) -> dict:
    """The ConfigMap an array Job reads its units from (binaryData: about 20x smaller than the scripts)."""
    data = base64.b64encode(cells_archive(workload)).decode()
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ownership.object_name(project, "cells", data), "namespace": project.namespace,
                         "labels": ownership.labels(project)},
            "binaryData": {CELLS_FILE: data}}


def holders(jobs: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[Mapping[str, Any], int | None]]]:
    """cell id -> (packed or array Job holding it, its completion index or None), from the cells annotations."""
    out: dict[str, list[tuple[Mapping[str, Any], int | None]]] = {}
    for job in jobs:
        units = (((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CELLS) or "").split()
        indexed = (job.get("spec") or {}).get("completionMode") == "Indexed"
        for i, unit in enumerate(units):
            for cid in unit.split("+"):
                out.setdefault(cid, []).append((job, i if indexed else None))
    return out


def parse_indexes(text: str | None) -> set[int]:
    """`0-2,5` (a Job's completedIndexes / failedIndexes) -> {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if "-" in part:
            first, last = part.split("-")
            out.update(range(int(first), int(last) + 1))
        elif part.strip():
            out.add(int(part))
    return out
