"""Student edition: the site and the notebooks without solutions, and the check that no solution's
text is left in them."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .build import build_book
from .launch import load_config
from .plan import EXECUTED_DIR, chapters

_FENCE = re.compile(r"^\s*(`{3,}|:{3,})\s*\{(solution|solution-start)\}")


def _split_solutions(markdown: str) -> tuple[str, list[str]]:
    """``(text without solutions, [each removed solution block's text])``: see :func:`strip_solutions`."""
    out: list[str] = []
    removed: list[str] = []
    lines = markdown.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        start = i
        fence, kind = match.groups()
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            i += 1
        i += 1  # the closing fence
        if kind == "solution-start":  # the solution's text runs to the {solution-end} block, included
            end = re.compile(r"^\s*(`{3,}|:{3,})\s*\{solution-end\}")
            while i < len(lines) and not end.match(lines[i]):
                i += 1
            if i < len(lines):
                fence = end.match(lines[i]).group(1)
                closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
                i += 1
                while i < len(lines) and not closing.match(lines[i]):
                    i += 1
                i += 1
        removed.append("".join(lines[start:i]))
    return re.sub(r"\n{3,}", "\n\n", "".join(out)), removed


def strip_solutions(markdown: str) -> str:
    """Remove every ``{solution}`` directive block (backtick or colon fence) and every gated
    ``{solution-start}`` ... ``{solution-end}`` pair from a markdown cell's text.

    A block ends at the first line that is only its fence character repeated at least as often as
    in the opening fence (CommonMark's rule, so nested shorter fences stay inside it).
    """
    return _split_solutions(markdown)[0]


# {glue}`key`, {glue:text}`key:.2f`, {glue:md}`key:myst` (roles) and ```{glue:figure} key (directives)
_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`:]+)")


_GLUE_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|:{3,})\s*\{glue(?::[a-z]+)?\}\s+(\S+)", re.M)


def glue_keys(markdown: str) -> set[str]:
    """The glue keys a markdown text displays (``{glue...}`` roles and directives)."""
    return set(_GLUE_ROLE.findall(markdown)) | set(_GLUE_DIRECTIVE.findall(markdown))


def _glued_names(cell: Any) -> set[str]:
    return {o.metadata["scrapbook"]["name"] for o in cell.get("outputs", []) if "scrapbook" in o.get("metadata", {})}


def _defined_names(source: str) -> set[str]:
    """Names a code cell binds (assignments, definitions, imports); empty when it does not parse."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _used_names(source: str) -> set[str]:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def solution_keys(nb: Any) -> set[str]:
    """The glue keys shown only inside solutions: displayed by a ``{solution}`` block and by no
    other markdown of the notebook."""
    inside: set[str] = set()
    outside: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            kept, removed = _split_solutions(cell.source)
            outside |= glue_keys(kept)
            for block in removed:
                inside |= glue_keys(block)
    return inside - outside


def student_notebook(nb: Any, *, name: str = "notebook") -> Any:
    """A copy of an executed chapter without solutions: :func:`strip_solutions` applied to its
    markdown cells, and every code cell that glues only keys of :func:`solution_keys` (the cells
    that compute a solution) removed with its outputs; a solution key glued by a cell that also
    glues other keys loses its output.

    Raises ``ValueError`` (one line, naming the chapter) when a later cell reads a name that only a
    removed cell binds: a reader re-running the student notebook would get a ``NameError``, so
    the chapter must compute that name outside its solution cell.
    """
    import copy

    nb = copy.deepcopy(nb)
    hidden = solution_keys(nb)
    kept: list[Any] = []
    removed_names: dict[str, int] = {}  # name -> index of the removed cell that binds it
    bound: set[str] = set()  # names bound by kept code cells so far
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source)
        elif cell.cell_type == "code":
            glued = _glued_names(cell)
            if glued and glued <= hidden:
                for n in _defined_names(cell.source):
                    removed_names.setdefault(n, index)
                continue
            if glued & hidden:
                cell.outputs = [
                    o for o in cell.outputs if o.get("metadata", {}).get("scrapbook", {}).get("name") not in hidden
                ]
            broken = sorted((_used_names(cell.source) & set(removed_names)) - bound)
            if broken:
                raise ValueError(
                    f"{name}: cell {index} reads {', '.join(broken)}, bound only by solution cell "
                    f"{removed_names[broken[0]]} that the student edition removes; compute it outside the solution cell"
                )
            bound |= _defined_names(cell.source)
        kept.append(cell)
    nb.cells = kept
    return nb


# What counts as a solution's text: its longest run of plain words (letters, spaces, commas), compared
# letters only, so line breaks, smart quotes, markup and a PDF's text extraction do not hide it.
_PLAIN_RUN = re.compile(r"[A-Za-z][A-Za-z ,;]{24,}[A-Za-z]")


def _letters(text: str) -> str:
    """Lower-case letters only, after NFKC (a PDF's ligature "\ufb01" reads "fi")."""
    import unicodedata

    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKC", text).lower())


def _phrase(text: str) -> str | None:
    """The longest run of at least four plain words in ``text`` (markup and glue roles removed)."""
    text = _GLUE_ROLE.sub(" ", re.sub(r"\{glue(?::[a-z]+)?\}`[^`]*`", " ", text))
    text = " ".join(line for line in text.splitlines() if not re.match(r"\s*(`{3,}|:{3,}|:[a-z-]+:)", line))
    runs = [r for r in _PLAIN_RUN.findall(" ".join(text.split())) if len(r.split()) >= 4]
    return max(runs, key=len) if runs else None


def solution_texts(nb: Any) -> list[str]:
    """One phrase of each solution of an executed chapter: of each ``{solution}`` block's own text,
    and of each output glued under a key only solutions show (:func:`solution_keys`)."""
    hidden = solution_keys(nb)
    phrases: list[str | None] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            phrases += [_phrase(block) for block in _split_solutions(cell.source)[1]]
        elif cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.get("metadata", {}).get("scrapbook", {}).get("name") in hidden:
                    phrases += [_phrase(str(v)) for v in out.get("data", {}).values()]
    return list(dict.fromkeys(p for p in phrases if p))


def edition_text(path: Path) -> str:
    """The text a reader of ``path`` sees or downloads: a notebook's sources and outputs, a PDF's
    extracted text, any other file as it is (HTML with its markup)."""
    if path.suffix == ".ipynb":
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
        parts = [c.source for c in nb.cells]
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                parts += [str(v) for v in out.get("data", {}).values()] + [str(out.get("text", ""))]
        return "\n".join(parts)
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    import html

    return html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(errors="replace")))


def edition_files(folder: Path) -> list[Path]:
    """The files of an edition that can hold text: pages, ``_sources``, the search index, notebooks
    and PDFs (not the bundled scripts, styles and images of ``_static``)."""
    suffixes = {".html", ".ipynb", ".md", ".txt", ".js", ".pdf", ".json"}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes and "_static" not in p.parts)


def leaked_solutions(folder: Path, phrases: Iterable[str]) -> list[tuple[str, str]]:
    """``(file, phrase)`` for every phrase of ``phrases`` found in a file of :func:`edition_files`."""
    wanted = {p: _letters(p) for p in phrases}
    found = []
    for path in edition_files(folder):
        text = _letters(edition_text(path))
        found += [(str(path.relative_to(folder)), p) for p, key in wanted.items() if key in text]
    return found


_COPY_IGNORE = (".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints")


def build_student(root: Path) -> Path:
    """Build the student edition into ``_build/student``: ``html/`` (the site) and ``notebooks/``
    (the downloadable executed chapters), both without solutions; returns ``_build/student``.

    The book's sources are copied to a temporary tree outside the repository, the executed chapters
    there are replaced by :func:`student_notebook` copies, and :func:`build_book` builds that tree;
    the normal site and the executed chapters are untouched. The copy is not a git checkout, so the
    student site has no repository or launch buttons (they would open the notebooks with solutions),
    unless ``_config.yml`` sets ``repository.url``, in which case only the repository button shows.
    """
    import shutil

    import nbformat

    names = chapters(root)
    missing = [n for n in names if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"chapters not executed yet: {', '.join(missing)}; run `make notebooks` first")
    target = root / "_build" / "student"
    with tempfile.TemporaryDirectory(prefix="sharpjac-student-") as tmp:
        tree = Path(tmp) / "book"
        shutil.copytree(root, tree, ignore=shutil.ignore_patterns(*_COPY_IGNORE), symlinks=True)
        config = load_config(tree)
        if config.get("launch_buttons"):  # even with repository.url set, no launch button opens solutions
            import yaml

            config["launch_buttons"] = {k: "" if k.endswith("_url") else v for k, v in config["launch_buttons"].items()}
            (tree / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        for name in names:
            path = tree / EXECUTED_DIR / f"{name}.ipynb"
            nbformat.write(student_notebook(nbformat.read(str(path), as_version=4), name=name), str(path))
        build_book(tree)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copytree(tree / "_build" / "html", target / "html")
        (target / "notebooks").mkdir()
        for name in names:
            shutil.copy(tree / EXECUTED_DIR / f"{name}.ipynb", target / "notebooks" / f"{name}.ipynb")
    phrases = [p for n in names for p in solution_texts(nbformat.read(str(root / EXECUTED_DIR / f"{n}.ipynb"), 4))]
    leaks = leaked_solutions(target, phrases)
    if leaks:  # a kind of solution strip_solutions and student_notebook do not know
        file, phrase = leaks[0]
        raise RuntimeError(f"the student edition still shows a solution: {phrase!r} in {file} ({len(leaks)} leaks)")
    return target
