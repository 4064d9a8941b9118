"""Launch buttons: one repository setting, the derived site configuration, the install cell, and the
executed notebooks committed to the branch the launch buttons open (``publish-notebooks``)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .plan import EXECUTED_DIR, chapters

#: Tag of the cell :func:`add_install_cell` puts at the top of every executed chapter.
INSTALL_TAG = "sharpjac-install"


#: The branch ``publish-notebooks`` writes and the launch buttons open, unless
#: ``repository.launch_branch`` in ``_config.yml`` names another.
LAUNCH_BRANCH = "book-notebooks"


def load_config(root: Path) -> dict:
    """``_config.yml`` of ``root`` as a dict (``{}`` when it is missing or not a mapping)."""
    import yaml

    path = root / "_config.yml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    return config if isinstance(config, dict) else {}


def https_url(remote: str) -> str | None:
    """A git remote as an https URL without credentials or ``.git``; ``None`` when it is not a web host.

    ``git@github.com:x/y.git``, ``ssh://git@github.com/x/y.git`` and ``https://user:token@github.com/x/y.git``
    all give ``https://github.com/x/y``; a local path gives ``None``.
    """
    from urllib.parse import urlsplit

    remote = remote.strip()
    scp = re.fullmatch(r"(?:[\w.-]+@)?([\w.-]+\.[a-z]{2,}):(?!/)(.+)", remote)
    if scp:
        host, path = scp.groups()
    else:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
            return None
        host, path = parts.hostname, parts.path
    path = path.strip("/")
    path = path[: -len(".git")] if path.endswith(".git") else path
    return f"https://{host}/{path}" if path else None


def _without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` removed (a token in ``repository.url`` never reaches a
    generated file, as for the git remote in :func:`https_url`)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _check_branch(root: Path, branch: Any) -> str:
    """``branch`` if publish-notebooks may write it: a plain branch name (no ``/``, not ``HEAD``,
    valid for ``git check-ref-format --branch``) that is not checked out here; else ValueError."""
    accepted = "a plain branch name such as book-notebooks, not the checked-out branch"
    if not isinstance(branch, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", branch) or branch == "HEAD":
        raise ValueError(f"--branch={branch!r} is invalid; accepted: {accepted}")
    if (
        branch.endswith((".lock", "."))
        or ".." in branch
        or git_output(root, "check-ref-format", "--branch", branch) is None
    ):
        raise ValueError(f"--branch={branch!r} is not a valid branch name; accepted: {accepted}")
    current = git_output(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    listing = git_output(root, "worktree", "list", "--porcelain") or ""
    elsewhere = {
        line.split("refs/heads/", 1)[1] for line in listing.splitlines() if line.startswith("branch refs/heads/")
    }
    if current == branch or branch in elsewhere:
        raise ValueError(
            f"--branch={branch!r} is checked out (here or in a worktree); publish-notebooks writes a separate branch "
            f"(accepted: {accepted}; default {LAUNCH_BRANCH})"
        )
    return branch


def git_output(root: Path, *args: str) -> str | None:
    """``git -C root *args``'s output, stripped; ``None`` when git fails."""
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _is_git_top(root: Path) -> bool:
    top = git_output(root, "rev-parse", "--show-toplevel")
    return top is not None and Path(top).resolve() == root.resolve()


def repository_url(root: Path) -> str | None:
    """The book's repository: ``repository.url`` of ``_config.yml``, or when that is empty the https
    form of ``git remote get-url origin`` of the repository whose top level is ``root``; ``None``
    when neither exists (the launch and repository buttons are then hidden)."""
    url = str((load_config(root).get("repository") or {}).get("url") or "").strip()
    if url:
        return _without_credentials(url).rstrip("/")
    if not _is_git_top(root):
        return None
    remote = git_output(root, "remote", "get-url", "origin")
    return https_url(remote) if remote else None


def launch_branch(root: Path) -> str:
    """The branch the launch buttons open: ``repository.launch_branch`` of ``_config.yml``, else
    :data:`LAUNCH_BRANCH`."""
    return str((load_config(root).get("repository") or {}).get("launch_branch") or LAUNCH_BRANCH)


def _branch_exists(root: Path, branch: str) -> bool:
    if not _is_git_top(root):
        return False
    return any(
        git_output(root, "rev-parse", "--verify", "--quiet", ref)
        for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}")
    )


def derived_config(root: Path) -> dict:
    """The configuration the site is built with: ``_config.yml`` (never modified) with the repository
    URL of :func:`repository_url` filled in, and the buttons that would lead nowhere hidden.

    - no URL: repository, issues and edit buttons off, every launch URL empty (no launch buttons);
    - a URL but no launch branch (:func:`launch_branch`, local or ``origin``'s) yet: the repository
      button stays, the launch buttons are hidden (``make publish-notebooks`` creates the branch);
    - both: ``repository.branch`` is the launch branch, where the executed notebooks are.
    """
    import copy

    config = copy.deepcopy(load_config(root))
    repository = dict(config.get("repository") or {})
    branch = str(repository.pop("launch_branch", "") or LAUNCH_BRANCH)
    url = repository_url(root)
    launch = dict(config.get("launch_buttons") or {})
    html = dict(config.get("html") or {})
    no_launch = {k: "" for k in ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url")}
    if url is None:
        repository["url"] = ""
        html.update(use_repository_button=False, use_issues_button=False, use_edit_page_button=False)
        launch.update(no_launch)
    else:
        repository["url"] = url
        if _branch_exists(root, branch):
            repository["branch"] = branch
        else:
            launch.update(no_launch)
    config["repository"], config["launch_buttons"], config["html"] = repository, launch, html
    return config


def write_derived_config(root: Path) -> Path:
    """Write :func:`derived_config` to ``_build/.derived/_config.yml`` and return its path."""
    import yaml

    path = root / "_build" / ".derived" / "_config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by sharpjac.publish from _config.yml for one build; edit _config.yml instead.\n"
    path.write_text(header + yaml.safe_dump(derived_config(root), sort_keys=False, allow_unicode=True))
    return path


def install_cell_source(url: str | None) -> str:
    """The first code cell of every executed chapter: installs ``sharpjac`` where it is missing
    (Colab, Binder) from ``url``; without a URL it says how to install from a local clone."""
    head = "# Installs the book's package where it is missing (Colab, Binder); does nothing where it is installed.\n"
    if url:
        return (
            head + "try:\n    import sharpjac  # noqa: F401\n"
            f'except ImportError:\n    %pip install -q "sharpjac @ git+{url}"\n'
        )
    return (
        head + "try:\n    import sharpjac  # noqa: F401\nexcept ImportError as err:\n"
        "    raise ImportError(\"sharpjac is not installed: in a clone of the book's repository run "
        '`pip install -e .` (or `make install`), then restart the kernel") from err\n'
    )


def add_install_cell(nb: Any, url: str | None) -> None:
    """Insert :func:`install_cell_source` after the chapter's title, tagged ``remove-cell`` (so the
    website does not show it, while Colab and Jupyter do) and :data:`INSTALL_TAG`."""
    import nbformat

    cell = nbformat.v4.new_code_cell(install_cell_source(url))
    cell.metadata["tags"] = ["remove-cell", INSTALL_TAG]
    first = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(first, cell)


def refresh_install_cell(notebook_json: str, url: str | None) -> str:
    """The executed notebook's JSON text with its install cell (:data:`INSTALL_TAG`) rewritten for
    ``url``, so that a notebook executed before the repository URL was set still installs from it;
    the text is returned unchanged when there is no install cell."""
    import nbformat

    nb = nbformat.reads(notebook_json, as_version=4)
    cells = [c for c in nb.cells if INSTALL_TAG in c.metadata.get("tags", [])]
    if not cells:
        return notebook_json
    for cell in cells:
        cell.source = install_cell_source(url)
    return nbformat.writes(nb)


def publish_notebooks(root: Path, *, branch: str | None = None, message: str | None = None) -> str:
    """Commit ``notebooks/executed/*.ipynb`` together with the tree of ``HEAD`` to ``branch``
    (default :func:`launch_branch`), the branch the launch buttons open; return the new commit.
    The committed copies install the package from the current :func:`repository_url`
    (:func:`refresh_install_cell`).

    Only git plumbing is used (a temporary index, ``write-tree``, ``commit-tree``, ``update-ref``):
    the working tree, the index and the checked-out branch are untouched. The branch's previous
    commit, if any, is the parent, so its history records each publication. Push it with
    ``git push origin <branch>``.
    """
    branch = branch or launch_branch(root)
    if not _is_git_top(root):
        raise FileNotFoundError(f"{root} is not the top level of a git repository; publish-notebooks needs one")
    _check_branch(root, branch)
    names = chapters(root)
    missing = [n for n in names if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")

        def git(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                ["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True, env=env, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
            return done.stdout.strip()

        git("read-tree", "HEAD")
        url = repository_url(root)
        for name in names:
            path = (EXECUTED_DIR / f"{name}.ipynb").as_posix()
            text = refresh_install_cell((root / path).read_text(encoding="utf-8"), url)
            blob = git("hash-object", "-w", "--stdin", stdin=text)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
        tree = git("write-tree")
        parent = git_output(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        head = git("rev-parse", "--short", "HEAD")
        text = message or f"Executed notebooks for the launch buttons, from {head}"
        commit = git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", text)
        git("update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else []))
    return commit
