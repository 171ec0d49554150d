"""A restarted pod runs the code it was submitted with: the startup's code step on real git repositories (a bare
"remote" and a clone standing for the image's copy), with `code: commit`, `latest` and `image`."""
from __future__ import annotations

import os
import subprocess

import pytest

from kube import config, grid, operations
from kube.provenance import ANNOTATION_COMMIT, ANNOTATION_DIRTY
from tests.helpers import KUBE, make_project

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT}, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repos(tmp_path):
    """(remote, image copy, project, first commit, newer commit pushed after the image was built)."""
    remote, work, image = tmp_path / "remote.git", tmp_path / "work", tmp_path / "image"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    git("clone", "-q", str(remote), str(work), cwd=tmp_path)
    (work / "version").write_text("1\n")
    git("add", "version", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    git("clone", "-q", str(remote), str(image), cwd=tmp_path)          # the image's copy, built now
    (work / "version").write_text("2\n")
    git("commit", "-qam", "two", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    project = make_project(tmp_path / "project", "model: {m: {command: 'echo ran $(cat version) $GIT_COMMIT'}}\n",
                           kube=KUBE + "conda_home: /nowhere\n")
    return remote, image, project, first, second


def pod_script(project, commit: str, code: str = "commit") -> str:
    (project / "config" / "kube.yaml").write_text(KUBE + f"conda_home: /nowhere\ncode: {code}\n")
    run = grid.build_runs(config.load(project))[0]
    job = operations.render_job(run, {ANNOTATION_COMMIT: commit, ANNOTATION_DIRTY: "false"}).manifest
    return job["spec"]["template"]["spec"]["containers"][0]["command"][2]


def run_in(image, script):
    return subprocess.run(["bash", "-c", script], cwd=image, capture_output=True, text=True,
                          env={**os.environ, **GIT, "HOME": str(image.parent)})


def test_the_submitted_commit_runs_even_after_newer_ones_were_pushed(repos):
    remote, image, project, first, second = repos
    done = run_in(image, pod_script(project, second))                 # submitted at `second`: fetched, checked out
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"ran 2 {second}"
    done = run_in(image, pod_script(project, first))                  # a restart of a job submitted at `first`
    assert done.stdout.strip().splitlines()[-1] == f"ran 1 {first}"


def test_an_unpushed_commit_fails_in_one_line(repos):
    remote, image, project, first, second = repos
    done = run_in(image, pod_script(project, "0" * 40))
    assert done.returncode == 1 and "ran" not in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("kube-toolbox: commit")]
    assert lines == [f"kube-toolbox: commit {'0' * 40} (the one submitted) is not on the remote: push it and "
                     f"submit again (or set code: latest)"]


def test_code_latest_pulls_and_code_image_runs_the_copy_untouched(repos):
    remote, image, project, first, second = repos
    latest = run_in(image, pod_script(project, first, "latest"))
    assert latest.returncode == 0 and latest.stdout.strip().splitlines()[-1] == f"ran 2 {second}"
    git("checkout", "-q", first, cwd=image)
    kept = run_in(image, pod_script(project, second, "image"))
    assert kept.returncode == 0 and kept.stdout.strip().splitlines()[-1] == f"ran 1 {first}"
    assert "running the image's code as it is (code: image)" in kept.stderr
