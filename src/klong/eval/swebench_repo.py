"""The repository of a SWE-bench instance: the agent's checkout at `base_commit`, a pristine copy of that commit kept
out of the agent's reach, and the patch (the work tree's `git diff` against the base commit).

- The pristine copy is a bare git dir holding the base commit (`--full-history`: and its ancestors), never a later
  commit, under a ref of its own (`refs/klong/base`). It is made from a local clone (`--repo-dir`) or from the `.git`
  of an instance image's `/testbed` (docker), and stays in the run dir (hidden from `bwrap`).
- The agent's `repo/` gets a new `.git` fetched from the pristine copy: HEAD detached at the base commit, no branch, no
  remote, no reflog of later work, so neither `git log --all` nor the object store shows the fix.
- The patch: the work tree is added (`git add -A`, honouring its `.gitignore`, untracked files included) to a
  temporary index and object store over the pristine copy and diffed against the base commit; binary files (git's
  `-` `-` in `--numstat`) are left out. The agent's own `.git` (its config, hooks, fsmonitor, filters, attributes
  file) is never read: every git command here runs with no system or global config and the pristine dir's config,
  which klong wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from klong.exceptions import InputFileError, KlongError

BASE_REF = "refs/klong/base"
SAFE = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*",
        "-c", "uploadpack.allowAnySHA1InWant=true", "-c", "protocol.file.allow=always", "-c", "core.quotePath=false",
        "-c", "diff.external=", "-c", "core.pager=cat"]  # fmt: skip
"""Options of every git command: no hook or fsmonitor runs, repositories owned by another uid (a sandbox user) are
read, and a bare commit id can be fetched from a local repository."""
SHA = re.compile(r"^[0-9a-f]{40}$")


def git_env(**extra: str) -> dict[str, str]:
    """The environment of klong's git commands: the host's, minus any `GIT_*` variable, with no system or global
    config and no prompt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", GIT_TEMPLATE_DIR="",
               GIT_AUTHOR_NAME="klong", GIT_AUTHOR_EMAIL="klong@localhost", GIT_COMMITTER_NAME="klong",
               GIT_COMMITTER_EMAIL="klong@localhost", **extra)  # fmt: skip
    return env


def git(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True,
        input: bytes | None = None) -> str:  # fmt: skip
    """Run git with klong's own configuration; a failure raises `KlongError` with git's message."""
    argv = ["git", *SAFE, *map(str, args)]
    proc = subprocess.run(argv, cwd=cwd, env=env or git_env(), input=input, capture_output=True, check=False)
    if check and proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise KlongError(f"git {' '.join(map(str, args[:3]))}: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc.stdout.decode(errors="replace")


def source_dir(repo_dir: Path, repo: str) -> Path:
    """The local clone of `owner/name`: `DIR/owner__name`."""
    return repo_dir / repo.replace("/", "__")


def check_source(source: Path, base_commit: str) -> None:
    """A local clone that holds the base commit, else `InputFileError` naming it."""
    if not source.is_dir():
        raise InputFileError(source, "no local clone of the repository here (--repo-dir DIR needs DIR/<owner>__<name>)")
    probe = subprocess.run(["git", *SAFE, "-C", str(source), "cat-file", "-e", f"{base_commit}^{{commit}}"],
                           env=git_env(), capture_output=True, check=False)  # fmt: skip
    if probe.returncode != 0:
        raise InputFileError(source, f"not a git repository holding the base commit {base_commit}")


def make_pristine(pristine: Path, source: Path, base_commit: str, *, full_history: bool) -> None:
    """A bare git dir holding only `base_commit` (and, with `full_history`, its ancestors) from the repository whose
    git dir or work tree is `source`."""
    if pristine.exists():
        shutil.rmtree(pristine)
    pristine.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", pristine)
    depth = [] if full_history else ["--depth=1"]
    git("--git-dir", pristine, "fetch", "-q", "--no-tags", *depth, f"file://{source.resolve()}", base_commit)
    git("--git-dir", pristine, "update-ref", BASE_REF, base_commit)
    (pristine / "FETCH_HEAD").unlink(missing_ok=True)


def install_repo(dest: Path, pristine: Path, base_commit: str, *, checkout: bool) -> None:
    """Give `dest` a new `.git` from the pristine copy, HEAD detached at the base commit. `checkout`: write the base
    commit's files into an empty `dest`; otherwise the files already there (an image's `/testbed`) are kept and only
    the index is set."""
    if (dest / ".git").exists() or (dest / ".git").is_symlink():
        _remove(dest / ".git")
    dest.mkdir(parents=True, exist_ok=True)
    git("init", "-q", dest)
    depth = ["--depth=1"] if (pristine / "shallow").exists() else []  # else the clone would lack its shallow list
    git("-C", dest, "fetch", "-q", "--no-tags", *depth, f"file://{pristine.resolve()}", base_commit)
    git("-C", dest, "update-ref", "--no-deref", "HEAD", base_commit)
    if checkout:
        git("-C", dest, "reset", "-q", "--hard", base_commit)
    else:
        git("-C", dest, "read-tree", base_commit)
        git("-C", dest, "update-index", "-q", "--refresh", check=False)  # differences are listed, not errors
    (dest / ".git" / "FETCH_HEAD").unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def extract_patch(pristine: Path, work_tree: Path, base_commit: str) -> tuple[str, list[str]]:
    """The work tree's diff against the base commit (text files only) and the binary paths left out. The pristine
    copy is not changed (objects go to a temporary store)."""
    if work_tree.is_symlink() or not work_tree.is_dir():
        raise KlongError(f"{work_tree}: the repository is no longer a folder (replaced by a link or removed)")
    with tempfile.TemporaryDirectory(prefix="klong-patch-") as tmp:
        (Path(tmp) / "objects").mkdir()
        env = git_env(GIT_INDEX_FILE=str(Path(tmp) / "index"), GIT_OBJECT_DIRECTORY=str(Path(tmp) / "objects"),
                      GIT_ALTERNATE_OBJECT_DIRECTORIES=str((pristine / "objects").resolve()))  # fmt: skip
        repo = ["--git-dir", str(pristine), "--work-tree", str(work_tree)]
        git(*repo, "add", "-A", env=env)
        numstat = git(*repo, "diff", "--cached", "--no-renames", "--numstat", "-z", base_commit, env=env)
        binary = [entry.split("\t", 2)[2] for entry in numstat.split("\0") if entry.startswith("-\t-\t")]
        excludes = [f":(exclude,literal){p}" for p in binary]
        patch = git(*repo, "diff", "--cached", "--no-renames", "--no-color", "--no-ext-diff", base_commit, "--", ".",
                    *excludes, env=env)  # fmt: skip
    return patch, binary


def changed_paths(patch: str) -> list[str]:
    """The paths a patch touches, as `git apply --numstat` reads them."""
    if not patch.strip():
        return []
    with tempfile.TemporaryDirectory(prefix="klong-apply-") as tmp:
        out = git("apply", "--numstat", "-z", "-", cwd=Path(tmp), input=patch.encode())
    return [entry.split("\t", 2)[2] for entry in out.split("\0") if entry.count("\t") >= 2]


def copy_from_image(image: str, dest: Path, path: str = "/testbed") -> None:
    """Copy `path` out of a docker image (pulled when missing) into the new folder `dest`, without running it."""
    import docker

    try:
        client = docker.from_env()
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            client.images.pull(image)
        container = client.containers.create(image, command=["true"])
        try:
            stream, _ = container.get_archive(path)
            with tempfile.TemporaryDirectory(prefix="klong-image-", dir=dest.parent) as tmp:
                with tempfile.TemporaryFile(dir=tmp) as f:
                    for chunk in stream:
                        f.write(chunk)
                    f.seek(0)
                    with tarfile.open(fileobj=f) as tar:
                        tar.extractall(Path(tmp) / "x", filter="tar")
                os.replace(Path(tmp) / "x" / Path(path).name, dest)
        finally:
            container.remove(force=True)
    except docker.errors.DockerException as e:
        raise KlongError(f"docker image {image}: cannot copy {path} out of it: {e}") from e
