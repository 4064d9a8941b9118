"""Command line: ``python -m sharpjac {list,info,run,store,new} ...``.

Examples::

    python -m sharpjac list
    python -m sharpjac info progressive_sharpening
    python -m sharpjac run progressive_sharpening --preset smoke
    python -m sharpjac run progressive_sharpening --preset quick --seed 1 --param n_seeds=3
    python -m sharpjac run progressive_sharpening --preset quick --set lrs_mse=0.1,0.2 --set time_mse=40
    python -m sharpjac run weight_decay --preset paper --executor ray --address auto
    python -m sharpjac new my_chapter      # a new chapter: five files (see sharpjac.scaffold)
    python -m sharpjac store list-stale        # runs and studies of other code, never read
    python -m sharpjac store prune             # ... deleted

The runs are those of the experiment's chapter at ``--preset``, ``--seed`` (the first seed of the
block) and ``--param`` (``Experiment.configs_for``, the mapping the chapter itself and the paper
pre-flight ``python -m sharpjac.publish missing`` use); ``--set`` then changes fields of them.

``--executor ray`` sends each grid point to a Ray task (a local Ray instance, or the cluster at
``--address``); the run store must then be on a file system every worker sees. Runs that fail are
listed in a table at the end (exit code 1); the others are stored.

Runs are stored in ``$SHARPJAC_CACHE`` (default ``~/.cache/sharpjac/runs``) and reused; the
combined table of an experiment is written as parquet (``--output``; default
``<cache>/experiments/<name>-<preset>-<hash>.parquet``). Both are checked writable before anything
trains. Errors (bad input, an unwritable, full or damaged store, a lock that is not released, a
Ray address that does not answer, memory) are one line on stderr with exit code 2; Ctrl-C exits
with 130 and a closed output pipe (``... | head -1``) with 141, quietly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["build_parser", "main"]


class _Error(Exception):
    pass


class _Once(argparse.Action):
    """Store an option's value, refusing a second occurrence (``--seed 1 --seed 2``): every setting is
    used exactly as given or refused, never silently replaced by the last one."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, f"_given_{self.dest}", False):
            raise _Error(f"{option_string} is given more than once; accepted: each option once")
        setattr(namespace, f"_given_{self.dest}", True)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sharpjac",
        description=(
            "Experiments of the companion to 'On progressive sharpening, flat minima and "
            "generalisation' (arXiv:2305.14683). Each experiment trains a grid of small "
            "networks, tracks sharpness and the input-output Jacobian, and stores the results."
        ),
        epilog=(
            "Start with 'list', then 'info NAME' to see an experiment's fields and presets, then "
            "'run NAME --preset smoke' (seconds) or '--preset quick' (minutes on a laptop CPU). "
            "Results are cached in $SHARPJAC_CACHE (default ~/.cache/sharpjac/runs) and reused."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list the experiments (name, then a short description)")
    info = sub.add_parser("info", help="fields, presets and defaults of one experiment")
    info.add_argument("name", help="experiment name (see 'list')")
    r = sub.add_parser(
        "run",
        help="run an experiment (reusing stored runs)",
        description="Run an experiment. Each grid point is one stored run; stored runs are loaded, not retrained.",
        epilog="example: python -m sharpjac run progressive_sharpening --preset smoke --set time_mse=0.4",
    )
    n = sub.add_parser(
        "new",
        help="scaffold a new chapter: experiment module, chapter, claim, table of contents",
        description="Write the five files of a new chapter (see sharpjac.scaffold) in the repository here.",
    )
    n.add_argument("name", help="the chapter's name, a lower-case identifier (e.g. my_chapter)")
    r.add_argument("name", help="experiment name (see 'list')")
    r.add_argument(
        "--preset", action=_Once, default="quick", help="smoke (seconds), quick (minutes, default) or paper (GPU)"
    )
    r.add_argument(
        "--seed",
        action=_Once,
        type=int,
        default=0,
        help="the chapter's seed: the first seed of the block of runs (default 0); the runs are those the "
        "chapter with this preset, seed and --param values asks for",
    )
    r.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a chapter parameter that changes its runs, e.g. --param n_seeds=3 (repeatable; JSON values)",
    )
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set time_mse=40 or --set lrs_mse=0.1,0.2 (repeatable)",
    )
    r.add_argument("--device", action=_Once, default=None, help="auto (default: CUDA if available), cpu or cuda")
    r.add_argument(
        "--cache",
        action=_Once,
        default=None,
        help="run store folder (default $SHARPJAC_CACHE or ~/.cache/sharpjac/runs)",
    )
    r.add_argument("--output", action=_Once, default=None, help="where to write the combined table (.parquet or .csv)")
    r.add_argument(
        "--threads",
        action=_Once,
        type=int,
        default=None,
        help="torch CPU threads of every run (default 1); part of each run's key, so the numbers "
        "never depend on the machine's load",
    )
    r.add_argument(
        "--executor",
        action=_Once,
        default="serial",
        choices=["serial", "ray"],
        help="serial (default: one run after the other, here) or ray (one Ray task per run; pip install -e .[cluster])",
    )
    r.add_argument(
        "--address",
        action=_Once,
        default=None,
        help="with --executor ray: the Ray cluster, 'auto' or HOST:PORT (default: start a local Ray instance)",
    )
    r.add_argument("--force", action="store_true", help="retrain even if stored")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    st = sub.add_parser(
        "store",
        help="runs and studies of other code in the run store: list-stale shows them, prune deletes them",
        description="Stored runs, studies and artefacts are keyed by the code that computed them "
        "(sharpjac.codekey); those of other code are never read. list-stale lists them; prune deletes them.",
    )
    st.add_argument("action", choices=["list-stale", "prune"], help="list-stale (changes nothing) or prune")
    st.add_argument("--cache", default=None, help="run store folder (default $SHARPJAC_CACHE, ~/.cache/sharpjac/runs)")
    return p


def _cmd_store(args) -> int:
    from .runs import RunStore

    store = RunStore(args.cache)
    if not store.root.is_dir():
        raise _Error(f"--cache={str(store.root)!r} is not a folder; accepted: an existing run store folder")
    entries = store.stale() if args.action == "list-stale" else store.prune()
    verb = "stale" if args.action == "list-stale" else "deleted"
    for path, why in entries:
        print(f"{verb}  {path}  ({why})")
    tail = "" if args.action == "prune" or not entries else "; delete them with: python -m sharpjac store prune"
    print(f"{len(entries)} {verb} entries in {store.root}{tail}")
    return 0


def _cmd_list() -> int:
    from . import experiments

    for name in experiments.names():
        print(f"{name}  {experiments.get(name).description}")
    return 0


def _get(name: str):
    from . import experiments

    try:
        return experiments.get(name)
    except ValueError as e:
        raise _Error(str(e)) from None


def _cmd_info(name: str) -> int:
    from . import experiments

    _get(name)
    print(experiments.describe(name))
    return 0


def _check_output(out: Path) -> None:
    """Raise StoreError unless ``out`` can be written: its folder exists and accepts a new file."""
    import os
    import tempfile

    from .runs import StoreError

    parent = out.parent
    if out.is_dir():
        raise StoreError(f"--output={str(out)!r} is a folder; give a file name ending in .parquet or .csv")
    if not parent.is_dir():
        raise StoreError(
            f"--output={str(out)!r}: folder {str(parent)!r} does not exist; create it or choose another --output"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StoreError(
            f"--output={str(out)!r}: folder {str(parent)!r} is not writable ({e.strerror or e}); "
            "choose another --output"
        ) from None


def _configs(exp, args) -> list:
    """The configs ``run`` trains: the chapter's (``Experiment.configs_for(preset, seed, **params)``,
    the mapping the chapter and ``publish missing`` use), then ``--set``/``--device``/``--threads``;
    every argument is checked here, before anything is written or trained (ValueError: one line)."""
    import dataclasses
    import json
    import os

    from .experiments import parse_overrides

    if args.address is not None and args.executor != "ray":
        raise ValueError(
            f"--address={args.address!r} is invalid with --executor {args.executor}; accepted: --executor ray"
        )
    if args.output and not Path(args.output).is_dir() and Path(args.output).suffix not in (".parquet", ".csv"):
        raise ValueError(f"--output={args.output!r} is invalid; accepted: a file name ending in .parquet or .csv")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed={args.seed} is invalid; accepted: an int in [0, 2**32)")
    params = {}
    for item in args.params:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--param {item!r} is not NAME=VALUE; accepted: e.g. --param n_seeds=3")
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    overrides = parse_overrides(exp.config_cls, args.overrides)
    if args.device is not None:
        overrides["device"] = args.device
    if args.threads is not None:
        cores = os.cpu_count() or 1
        if args.threads > cores:  # < 1 is refused by TrainConfig.threads
            raise ValueError(
                f"--threads {args.threads} is invalid on this machine; accepted: an int in [1, {cores}] (its CPU cores)"
            )
        overrides["threads"] = args.threads
    configs = [dataclasses.replace(c, **overrides) for c in exp.configs_for(args.preset, args.seed, **params)]
    if any(c.device != "auto" for c in configs):
        from ._util import resolve_device

        resolve_device(configs[0].device)
    return configs


def _joint_key(configs) -> str:
    import hashlib

    return hashlib.sha256(" ".join(c.key() for c in configs).encode()).hexdigest()[:16]


def _combined(results: list):
    """One result from several configs' results: tables concatenated (a study's by table name)."""
    import pandas as pd

    if len(results) == 1:
        return results[0]
    if isinstance(results[0], dict):
        return {t: pd.concat([r[t] for r in results], ignore_index=True) for t in results[0]}
    return pd.concat(results, ignore_index=True)


def _cmd_run(args) -> int:
    from .runs import RunStore, StoreError

    exp = _get(args.name)
    try:
        configs = _configs(exp, args)
    except (ValueError, TypeError) as e:
        raise _Error(str(e)) from None
    store = RunStore(args.cache)
    tag = configs[0].key() if len(configs) == 1 else _joint_key(configs)
    out = Path(args.output) if args.output else (store.root / "experiments" / f"{exp.name}-{args.preset}-{tag}.parquet")
    # everything the run will write is checked before anything trains
    try:
        try:
            store.check_writable()
        except StoreError:
            # a read-only store folder can still serve stored runs when the table goes elsewhere;
            # runs.run refuses (before training) any run it would have to train
            if not args.output or not store.root.is_dir():
                raise
        if not args.output:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                from .runs import _os_error

                raise _os_error(e, "experiment tables folder", "or give --output FILE") from None
        _check_output(out)
    except StoreError as e:
        raise _Error(str(e)) from None
    progress = False if args.no_progress else None
    from .executors import GridFailed, make_executor, using
    from .experiments.base import MissingRuns

    try:
        executor = make_executor(args.executor, address=args.address)
        with executor, using(executor):
            df = _combined([exp.run(c, store=store, force=args.force, progress=progress) for c in configs])
    except GridFailed as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"runs:  {store.root}", file=sys.stderr)
        return 1
    except (StoreError, ValueError, FileNotFoundError, ImportError, ConnectionError, MissingRuns) as e:
        raise _Error(str(e)) from None
    tables = df if isinstance(df, dict) else {"": df}
    written = []
    for name, table in tables.items():
        path = out if not name else out.with_name(f"{out.stem}.{name}{out.suffix}")
        frame = table.copy()
        frame.attrs = {}
        try:
            if path.suffix == ".csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
        except OSError as e:
            raise _Error(
                f"cannot write --output={str(path)!r} ({e.strerror or e}); the runs are stored in "
                f"{store.root}, re-run with another --output"
            ) from None
        written.append(path)
    if isinstance(df, dict):
        sizes = ", ".join(f"{name} ({len(t)} rows)" for name, t in df.items())
        print(f"experiment {exp.name} (preset {args.preset}): tables {sizes}")
        for path in written:
            print(f"table: {path}")
        print(f"runs:  {store.root}")
        return 0
    keys = sorted(set(df["run_key"])) if len(df) else []
    statuses = df.groupby("run_key")["status"].first().value_counts().to_dict() if len(df) else {}
    print(f"experiment {exp.name} (preset {args.preset}): {len(keys)} runs, {len(df)} rows, status {statuses}")
    print(f"table: {out}")
    print(f"runs:  {store.root} ({', '.join(k[:12] for k in keys)})")
    return 0


def _quiet_broken_pipe() -> int:
    """After a closed output pipe (``... | head -1``): no traceback at exit, status 141 (SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def _one_line(e: BaseException) -> str | None:
    """The one-line message of a fault a user can fix (None: a bug, let its traceback show)."""
    from .runs import StoreError, _os_error

    if isinstance(e, StoreError):
        return str(e)
    if isinstance(e, OSError):
        return str(_os_error(e, "file system", "see the path above"))
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return (
            f"out of memory ({type(e).__name__}: {first}); choose smaller widths, n_train or "
            "physical_batch_size (--set physical_batch_size=256), or a machine with more memory"
        )
    return None


def _cmd_new(name: str) -> int:
    from .publish import repository_root
    from .scaffold import new_chapter

    try:
        root = repository_root()
        paths = new_chapter(root, name)
    except (ValueError, FileNotFoundError) as e:
        raise _Error(str(e)) from None
    print(f"chapter {name}: {len(paths)} files written or edited")
    for path in paths:
        print(f"  {path.relative_to(root)}")
    print(f"next: make chapter NB={name} PRESET=smoke, then edit the experiment, its claim and the chapter")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed to stderr
        return int(e.code) if e.code is not None else 0
    except _Error as e:  # an option given twice (_Once)
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "info":
            return _cmd_info(args.name)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "store":
            return _cmd_store(args)
        if args.command == "new":
            return _cmd_new(args.name)
        parser.print_help()
        return 0
    except _Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the run resumes from its last checkpoint when started again)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except Exception as e:  # noqa: BLE001 - faults a user can fix become one line; bugs re-raise
        line = _one_line(e)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
