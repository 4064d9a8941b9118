"""The command line ``python -m sharpjac.publish`` (the Makefile calls it); the commands are listed
in :mod:`sharpjac.publish`. Each command imports what it needs when it runs, so ``--help``,
``list`` and the argument errors answer at once."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .build import build_book
from .execute import ChapterError, cost_report, default_jobs, execute_plans, format_seconds
from .instructors import times_table
from .launch import LAUNCH_BRANCH, git_output, launch_branch, publish_notebooks, repository_url
from .lint import lint_chapters
from .plan import PRESETS, chapters, parse_params, parse_value, plan_chapters, repository_root, selected_chapters
from .preflight import missing_report, missing_runs
from .student import build_student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sharpjac.publish",
        description="Execute the book's chapters with papermill, or build the site.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("notebooks", help="execute chapters into notebooks/executed/")
    run.add_argument(
        "--preset",
        default=None,
        help=f"one of {', '.join(PRESETS)} (default: each chapter's stored preset, else quick)",
    )
    run.add_argument("--seed", type=int, default=None, help="default: each chapter's stored seed, else 0")
    run.add_argument("--params", default=None, help='any chapter parameters, e.g. "n_seeds=5 fraction=0.8"')
    run.add_argument("--reset", action="store_true", help="forget the stored parameters: start from the defaults")
    run.add_argument("--only", nargs="*", help="chapter names (stems of notebooks/*.md); default: all")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="extra notebook parameter (JSON value)",
    )
    run.add_argument("--force", action="store_true", help="re-execute even when up to date")
    run.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="chapters executed at once (default: $SHARPJAC_JOBS, else one per core, at most 2)",
    )
    miss = sub.add_parser("missing", help="list the runs the chapters need that the run store lacks, with costs")
    miss.add_argument("--preset", default="paper", help=f"one of {', '.join(PRESETS)} (default paper)")
    miss.add_argument("--only", nargs="*", help="chapter names (stems of notebooks/*.md); default: all")
    sub.add_parser("build", help="build _build/html from the executed chapters")
    sub.add_parser("student", help="build the student edition (no solutions) into _build/student")
    pub = sub.add_parser("publish-notebooks", help="commit the executed chapters to the launch buttons' branch")
    pub.add_argument("--branch", default=None, help=f"default: repository.launch_branch, else {LAUNCH_BRANCH}")
    ins = sub.add_parser("instructors", help="print the time table of the instructors' page (measured and estimated)")
    ins.add_argument("--smoke-dir", type=Path, default=None, help="executed copies at the smoke preset")
    ins.add_argument("--quick-dir", type=Path, default=None, help="executed copies at the quick preset")
    cst = sub.add_parser("costs", help="print the cost table: each chapter's time in kernel start, training, ...")
    cst.add_argument("--only", nargs="*", help="chapter names (stems of notebooks/*.md); default: all")
    sub.add_parser("list", help="list the chapters in table-of-contents order")
    lint = sub.add_parser("lint", help="ruff check and ruff format --check on the chapters' code")
    lint.add_argument("--fix", action="store_true", help="format the code cells in place")
    args = parser.parse_args(argv)
    try:
        root = repository_root()
    except FileNotFoundError as err:
        print(
            f"error: {err}; run this command inside the book's repository (its top level holds _toc.yml)",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "list":
            print("\n".join(chapters(root)))
        elif args.command == "lint":
            findings = lint_chapters(root, fix=args.fix)
            print("\n".join(findings) if findings else f"chapters: ruff clean ({len(chapters(root))} chapters)")
            return 1 if findings else 0
        elif args.command == "missing":
            return _check_store(root, args.preset, args.only, quiet_when_complete=False)
        elif args.command == "notebooks":
            return _notebooks(root, args)
        elif args.command == "costs":
            print(cost_report(root, args.only))
        elif args.command == "instructors":
            print(times_table(root, smoke_dir=args.smoke_dir, quick_dir=args.quick_dir))
        elif args.command == "student":
            start = time.perf_counter()
            target = build_student(root)
            print(f"student edition built in {format_seconds(time.perf_counter() - start)}: {target / 'html'}")
        elif args.command == "publish-notebooks":
            branch = args.branch or launch_branch(root)
            commit = publish_notebooks(root, branch=branch)
            url = repository_url(root)
            if url is None:
                remote = git_output(root, "remote", "get-url", "origin")
                print(
                    f"warning: the origin remote ({remote or 'none'}) is not a web URL and _config.yml sets no "
                    "repository.url: the published notebooks tell readers to clone, and the site's launch and "
                    "repository buttons stay hidden; set repository.url in _config.yml and publish again",
                    file=sys.stderr,
                )
            print(f"executed chapters committed to branch {branch} ({commit[:12]}); the working tree is untouched")
            print(
                f"  publish them: git push origin {branch}"
                + (f"   (launch buttons open {url}/blob/{branch}/...)" if url else "")
            )
        else:
            start = time.perf_counter()
            build_book(root)
            print(
                f"site built in {format_seconds(time.perf_counter() - start)}: "
                f"{root / '_build' / 'html' / 'index.html'}"
            )
    except (ChapterError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _notebooks(root: Path, args: argparse.Namespace) -> int:
    """The ``notebooks`` command: plan, check the store for the paper preset, execute, and print the
    cost table of the chapters executed."""
    explicit: dict[str, Any] = {}
    if args.preset is not None:
        explicit["preset"] = args.preset
    if args.seed is not None:
        explicit["seed"] = args.seed
    explicit.update(parse_params(args.params or ""))
    explicit.update({k: parse_value(v) for k, v in args.parameter})
    plans = plan_chapters(root, selected_chapters(root, args.only), explicit, reset=args.reset, force=args.force)
    paper = [p.name for p in plans if p.execute and p.parameters["preset"] == "paper"]
    # the paper preset never trains while the book is built: missing runs stop it here
    paper_parameters = {p.name: p.parameters for p in plans if p.name in paper}
    if paper and _check_store(root, "paper", paper, quiet_when_complete=True, parameters=paper_parameters):
        return 1
    given = ", ".join(f"{k}={v!r}" for k, v in explicit.items()) or "none (stored parameters are kept)"
    print(f"executing chapters; parameters given: {given}")
    start = time.perf_counter()
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}; accepted: a positive integer")
    results = execute_plans(root, plans, jobs=jobs)
    print(f"all chapters up to date ({format_seconds(time.perf_counter() - start)})")
    executed = [r.name for r in results if r.status == "executed"]
    if executed:
        print(f"\nwhere the time went (python -m sharpjac.publish costs):\n{cost_report(root, executed)}")
        print(f"(written to {root / 'notebooks' / 'executed' / 'costs.md'})")
    return 0


def _check_store(
    root: Path, preset: str, only, *, quiet_when_complete: bool, parameters: Mapping[str, Mapping] | None = None
) -> int:
    """Print the missing runs of the chapters (all, or ``only``); 1 when some are missing.

    Each chapter's parameters are ``parameters[chapter]``, else those :func:`plan_chapters` chooses
    (its stored ones, else its defaults) with ``preset``."""
    from sharpjac.runs import RunStore

    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not a preset; accepted values: {', '.join(PRESETS)}")
    names = chapters(root)
    selected = list(only) if only else names
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    if parameters is None:
        parameters = {p.name: p.parameters for p in plan_chapters(root, selected, {"preset": preset})}
    store = RunStore()
    missing = missing_runs(root, selected, preset=preset, store=store, parameters=parameters)
    if missing:
        print(missing_report(missing, preset=preset, store_root=store.root), file=sys.stderr)
        return 1
    if not quiet_when_complete:
        print(f"every run the chapters need at preset {preset!r} is in the run store {store.root}")
    else:
        print(f"run store {store.root} holds every run the chapters need at preset {preset!r}: nothing will train")
    return 0
