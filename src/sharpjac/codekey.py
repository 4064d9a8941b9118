"""Digests of the code that computes a stored result, so the run store never serves numbers of other code.

A stored run (or study, or artefact) is keyed by what it depends on. Its configuration is one
part; the *code* that turns the configuration into numbers is the other. The package version
cannot stand for the code (it stays the same across commits), so the key holds
:func:`code_digest` of the modules the computation executes:

- the modules are found statically: the ``sharpjac`` modules that the entry module imports (at
  the top or inside functions: ``import sharpjac.x``, ``from . import x``, ``from .x import y``),
  and theirs, transitively (:func:`module_closure`). For a training run the entry is
  :mod:`sharpjac.training` (training loop, models, losses, data, measurement hooks, curvature,
  Jacobians and what they use); for a study or an artefact it is the module that defines the
  ``compute`` function (the experiment module) and what it imports. A parent package's
  ``__init__`` is included only when it is imported itself;
- each module's source is *normalised*: parsed, docstrings removed, and dumped with
  :func:`ast.dump` (no line numbers). Comments, docstrings, blank lines and formatting leave the
  dump unchanged; any change to what the code does (a constant, an operator, a call, a name)
  changes it;
- the digest is the SHA-256 of the sorted ``(module name, normalised source)`` pairs and of the
  Python minor version (the AST's form depends on it).

Being static, the closure over-approximates (a module imported but not used on a given path
still counts): a change there costs a recomputation, never a stale result. Code outside
``sharpjac`` (torch, numpy, ...) is covered by the versions recorded in each run's ``meta.json``,
not by the key.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["RUN_ENTRY", "code_digest", "module_closure", "normalised_source", "package_root"]

PACKAGE = "sharpjac"
#: The module whose import closure a training run executes.
RUN_ENTRY = "sharpjac.training"


def package_root() -> Path:
    """The folder holding the ``sharpjac`` package (``src/``)."""
    return Path(__file__).resolve().parent.parent


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def normalised_source(text: str) -> str:
    """``text`` (Python source) parsed, docstrings removed, dumped without positions."""
    return _dump(ast.parse(text))


def _dump(tree: ast.AST) -> str:
    """:func:`normalised_source` of a parsed module (its docstrings are removed in place)."""
    return ast.dump(_strip_docstrings(tree), annotate_fields=True, include_attributes=False)


def _module_path(name: str, root: Path) -> Path | None:
    parts = name.split(".")
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(name: str, root: Path) -> bool:
    return (root.joinpath(*name.split(".")) / "__init__.py").is_file()


def _imports(name: str, tree: ast.AST, root: Path) -> set[str]:
    """The ``sharpjac`` modules ``tree`` (the module ``name``) imports anywhere in its body."""
    package = name if _is_package(name, root) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 > len(parts) - 1:
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
                if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                    continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _module_path(sub, root) is not None:
                    found.add(sub)  # ``from pkg import module``
                else:
                    found.add(target)  # ``from module import name``
    return {m for m in found if _module_path(m, root) is not None}


def module_closure(entries: Iterable[str], root: Path | None = None) -> dict[str, str]:
    """``{module name: normalised source}`` of ``entries`` and every ``sharpjac`` module they
    import, transitively, read from ``root`` (default :func:`package_root`). An entry that is a
    package stands for all its modules (a registry such as :mod:`sharpjac.experiments` imports
    them dynamically, which no static reading sees)."""
    root = Path(root) if root is not None else package_root()
    todo = []
    for name in entries:
        todo.append(name)
        if _is_package(name, root):
            folder = root.joinpath(*name.split("."))
            todo.extend(f"{name}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__")
    out: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        path = _module_path(name, root)
        if path is None:
            raise ValueError(f"module {name!r} is not found under {root}; accepted: a sharpjac module")
        st = path.stat()
        source, imports = _read_module(name, str(root), str(path), st.st_mtime_ns, st.st_size)
        out[name] = source
        todo.extend(imports - set(out))
    return out


@functools.lru_cache(maxsize=512)
def _read_module(name: str, root: str, path: str, mtime_ns: int, size: int) -> tuple[str, frozenset[str]]:
    """(normalised source, sharpjac imports) of one module file, parsed once per process and file
    version: every study and run key of a chapter shares most of its closure, so a chapter that
    keys dozens of runs parses each module once, not once per key."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    imports = frozenset(_imports(name, tree, Path(root)))  # before _dump strips the docstrings
    return _dump(tree), imports  # one parse: compiling the source is most of a chapter's keying time


@functools.lru_cache(maxsize=64)
def _digest_cached(entries: tuple[str, ...], root: str, stamp: tuple) -> str:
    sources = module_closure(entries, Path(root))
    h = hashlib.sha256(f"python {sys.version_info.major}.{sys.version_info.minor}\n".encode())
    for name in sorted(sources):
        h.update(f"{name}\n{len(sources[name])}\n".encode())
        h.update(sources[name].encode())
    return h.hexdigest()


def _stamp(root: Path) -> tuple:
    """(path, mtime_ns, size) of every module under ``root/sharpjac``: the cache is redone on change."""
    pkg = root / PACKAGE
    return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in pkg.rglob("*.py")))


def code_digest(entries: Iterable[str] | str = RUN_ENTRY, root: Path | None = None) -> str:
    """SHA-256 of the normalised sources of ``entries`` and their ``sharpjac`` import closure.

    Args:
        entries: module names (e.g. ``"sharpjac.training"``, ``"sharpjac.experiments.t3_low_loss"``).
        root: the folder holding the ``sharpjac`` package (default: the one imported).

    Returns:
        64 hex digits; equal for two trees that differ only in comments, docstrings or layout.
    """
    if isinstance(entries, str):
        entries = (entries,)
    root = Path(root).resolve() if root is not None else package_root()
    return _digest_cached(tuple(sorted(set(entries))), str(root), _stamp(root))
