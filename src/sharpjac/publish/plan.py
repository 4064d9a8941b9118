"""The chapters and their parameters: which chapters the book has (table-of-contents order), the
parameters each accepts (its ``parameters`` cell), the hash of a chapter's inputs, and the plan of
which chapters to execute with which parameters (:func:`plan_chapters`; see :mod:`sharpjac.publish`
for the rules). Nothing here executes a chapter."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESETS = ("smoke", "quick", "paper")


#: The parameters of a chapter that has no stored parameters (new, source changed, or ``--reset``).
DEFAULT_PARAMETERS: dict[str, Any] = {"preset": "quick", "seed": 0}


EXECUTED_DIR = Path("notebooks") / "executed"


_SOURCE_DIR = Path(__file__).resolve().parent.parent  # src/sharpjac: the whole package


def repository_root(start: Path | None = None) -> Path:
    """The directory holding ``_toc.yml`` (searched upwards from ``start`` or the cwd)."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file():
            return candidate
    raise FileNotFoundError(f"no _toc.yml found in {here} or any parent directory")


def chapters(root: Path) -> list[str]:
    """Chapter names (stems of ``notebooks/<name>.md``) in table-of-contents order.

    Every ``notebooks/executed/<name>`` entry of ``_toc.yml`` whose source ``notebooks/<name>.md``
    exists is a chapter; sources in ``notebooks/`` that the table of contents does not list come
    last, so that a new chapter is never silently skipped.
    """
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    listed: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith(str(EXECUTED_DIR)):
                listed.append(Path(file).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    present = sorted(p.stem for p in (root / "notebooks").glob("*.md"))
    return [n for n in listed if n in present] + [n for n in present if n not in listed]


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_SOURCE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(_SOURCE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def input_hash(notebook: Path, parameters: Mapping[str, Any]) -> str:
    """Hash of everything an executed chapter depends on: the chapter's source file (its ``.md``
    text, byte for byte), the package source and the parameters."""
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(_source_digest().encode())
    digest.update(json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def stored_meta(executed: Path) -> dict:
    """The ``sharpjac`` metadata of an executed chapter (``{}`` when there is none)."""
    try:
        meta = json.loads(executed.read_text())["metadata"].get("sharpjac", {})
    except (OSError, ValueError, KeyError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def source_hash(source: Path) -> str:
    """SHA-256 of a chapter's ``.md`` text alone: stored with the executed copy so that a changed
    source (which resets the chapter's parameters) is told apart from a changed package."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def chapter_parameters(source: Path) -> dict[str, Any]:
    """The names assigned in a chapter's ``parameters`` cell, with their default values.

    A value that is not a Python literal is given as its source text. A chapter without a cell tagged
    ``parameters`` accepts :data:`DEFAULT_PARAMETERS` (papermill injects them at its top).
    """
    import ast

    nb = load_chapter(source)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return dict(DEFAULT_PARAMETERS)
    found: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    found[target.id] = ast.unparse(node.value)
    return found


def check_parameter_names(source: Path, parameters: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) when a parameter is not assigned in the chapter's parameters cell."""
    accepted = chapter_parameters(source)
    unknown = [k for k in parameters if k not in accepted]
    if unknown:
        raise ValueError(
            f"parameter {unknown[0]}={parameters[unknown[0]]!r} is not a parameter of chapter {source.stem}; "
            f"accepted names: {', '.join(accepted)}"
        )


def parse_params(text: str) -> dict[str, Any]:
    """``"n_seeds=5 fraction=0.8 method=kendall"`` -> ``{"n_seeds": 5, "fraction": 0.8, "method": "kendall"}``.

    Words are split as a shell would (quotes group); each value is read as JSON when it is JSON
    (numbers, ``true``, ``"text"``), else kept as text (:func:`parse_value`).
    """
    import shlex

    out: dict[str, Any] = {}
    for word in shlex.split(text):
        name, sep, value = word.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"params entry {word!r} is not NAME=VALUE; accepted: words like n_seeds=5 fraction=0.8")
        out[name] = parse_value(value)
    return out


@dataclass(frozen=True)
class ChapterPlan:
    """What :func:`plan_chapters` decided for one chapter.

    ``parameters`` are those it will be (or was) executed with; ``stored`` those of its executed copy
    (``None`` when there is none); ``reason`` is one of ``"up to date"``, ``"new"``, ``"source changed"``,
    ``"parameters changed"``, ``"reset"``, ``"package changed"`` or ``"forced"``.
    """

    name: str
    parameters: dict
    stored: dict | None
    execute: bool
    reason: str

    def changes(self) -> str:
        """The parameters that differ from the stored ones, as ``"seed 1 -> 0, n_seeds 5 -> (default)"``."""
        if self.stored is None:
            return ""
        keys = list(self.stored) + [k for k in self.parameters if k not in self.stored]
        parts = []
        for key in keys:
            old, new = self.stored.get(key, "(default)"), self.parameters.get(key, "(default)")
            if old != new:
                parts.append(f"{key} {old!r} -> {new!r}".replace("'(default)'", "(default)"))
        return ", ".join(parts)


def plan_chapters(
    root: Path,
    names: Iterable[str],
    explicit: Mapping[str, Any] | None = None,
    *,
    reset: bool = False,
    force: bool = False,
) -> list[ChapterPlan]:
    """Decide, for each chapter, its parameters and whether it must be executed; nothing runs.

    A chapter's parameters are its stored ones (those its executed copy was computed with) when its
    ``.md`` source is unchanged and ``reset`` is false, else :data:`DEFAULT_PARAMETERS`; then updated
    with ``explicit``. Every explicit name is checked against every selected chapter's parameters
    cell first (``ValueError``, one line, before any work). A chapter is executed when the hash of
    its inputs (:func:`input_hash`) differs from the stored one, or with ``force``.
    """
    explicit = dict(explicit or {})
    names = list(names)
    for name in names:
        check_parameter_names(root / "notebooks" / f"{name}.md", explicit)
    plans = []
    for name in names:
        source = root / "notebooks" / f"{name}.md"
        output = root / EXECUTED_DIR / f"{name}.ipynb"
        meta = stored_meta(output) if output.is_file() else {}
        stored = meta.get("parameters") if isinstance(meta.get("parameters"), dict) else None
        # an executed copy from before source hashes were stored: its source is taken as unchanged
        source_changed = stored is not None and meta.get("source_hash", source_hash(source)) != source_hash(source)
        if stored is not None and not source_changed and not reset:
            accepted = chapter_parameters(source)
            parameters = {k: v for k, v in stored.items() if k in accepted}
        else:
            parameters = dict(DEFAULT_PARAMETERS)
        parameters.update(explicit)
        validate_parameters(parameters)
        up_to_date = stored is not None and meta.get("input_hash") == input_hash(source, parameters)
        if force:
            reason = "forced"
        elif up_to_date:
            reason = "up to date"
        elif stored is None:
            reason = "new"
        elif source_changed:
            reason = "source changed"
        elif reset:
            reason = "reset"
        elif parameters != stored:
            reason = "parameters changed"
        else:
            reason = "package changed"
        plans.append(ChapterPlan(name, parameters, stored, force or not up_to_date, reason))
    return plans


def describe_plan(plan: ChapterPlan) -> str | None:
    """The line printed before a chapter is re-executed with parameters other than its stored ones
    (``None`` when it is not, so nothing is re-executed silently with other parameters)."""
    if not plan.execute or plan.stored is None or plan.parameters == plan.stored:
        return None
    why = {
        "source changed": "its source changed, so its parameters start again from the defaults",
        "reset": "--reset: the defaults",
    }.get(plan.reason, "as given")
    return f"chapter {plan.name}: re-executed with other parameters ({why}): {plan.changes()}"


def load_chapter(source: Path) -> Any:
    """Read a chapter's MyST Markdown source into an nbformat v4 notebook node for papermill.

    Papermill cannot read ``.md`` files, so the conversion happens here, in memory, with jupytext
    (the same conversion as ``jupytext --to ipynb``): every ``{code-cell}`` becomes a code cell with
    its ``:tags:``, the text between them markdown cells. The jupytext header is dropped from the
    notebook's metadata, so the executed copy is a plain notebook. Raises ``ValueError`` when the
    file is not in jupytext's ``myst`` format (a plain Markdown file would silently have no code).
    """
    import jupytext
    from jupytext.formats import guess_format

    text = source.read_text(encoding="utf-8")
    fmt, _ = guess_format(text, ".md")  # from the header, or else from the {code-cell} fences
    if fmt != "myst":
        raise ValueError(
            f"chapter source {source.name}: format_name={fmt!r}; accepted: 'myst' (a jupytext MyST Markdown notebook)"
        )
    nb = jupytext.reads(text, fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    return nb


def validate_parameters(parameters: Mapping[str, Any]) -> None:
    """Reject a bad preset or seed before any notebook runs."""
    preset = parameters.get("preset")
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not a preset; accepted values: {', '.join(PRESETS)}")
    seed = parameters.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")


def selected_chapters(root: Path, only: Iterable[str] | None) -> list[str]:
    """The chapters ``only`` names (all when empty or ``None``); ``ValueError`` naming an unknown one."""
    names = chapters(root)
    selected = list(only) if only else names
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters: {', '.join(names)}")
    return selected


def parse_value(text: str) -> Any:
    """A parameter value from the command line: JSON when it parses as JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text
