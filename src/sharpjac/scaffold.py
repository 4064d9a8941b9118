"""A new chapter, as it really is: ``python -m sharpjac new NAME`` (or ``make new NAME=...``).

A chapter of this book is five files, and the command writes or edits all of them:

1. ``src/sharpjac/experiments/NAME.py`` (new): the experiment: a config class with the three
   presets, ``chapter_configs(preset, seed, *, n_seeds)`` (the one mapping from the chapter's
   parameters to its runs, used by the chapter, the command line and the paper pre-flight),
   ``summarise`` and ``evaluate`` (the statistics, in the tested package);
2. ``src/sharpjac/claims/_NAME.py`` (new): the chapter's claim, with its decision rule;
3. ``notebooks/NAME.md`` (new): the chapter: parameters, run, show, explain;
4. ``_toc.yml`` (edited): the chapter in the part "New chapters", before the back matter;
5. ``src/sharpjac/claims/registry.py`` (edited): ``NAME`` appended to ``CHAPTERS`` (the book order).

The generated experiment is a small working example (an MLP on scikit-learn's digits at two step
sizes, seconds at ``smoke``) whose claim, "training lowers the training loss", is decided by the
numbers; replace it with yours, then add tests of ``summarise``/``evaluate`` in ``tests/``.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["FILES", "new_chapter"]

#: The files a new chapter touches (relative to the repository root; ``{name}`` is the chapter).
FILES = (
    "src/sharpjac/experiments/{name}.py",
    "src/sharpjac/claims/_{name}.py",
    "notebooks/{name}.md",
    "_toc.yml",
    "src/sharpjac/claims/registry.py",
)

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
_PART = "  - caption: New chapters\n    chapters:\n"

EXPERIMENT = '''"""{title}: the experiment of the chapter ``notebooks/{name}.md`` (scaffolded by
``python -m sharpjac new {name}``; replace the example with yours).

The example trains a small MLP on scikit-learn's digits with full-batch gradient descent at two step
sizes and records the training loss, the sharpness and the Jacobian at every measurement.
:func:`summarise` gives each run's first and last training loss; :func:`evaluate` gives the numbers
that decide the claim ``{name}.loss_decreases``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import claims
from ..training import TrainConfig
from . import register
from .base import ExperimentConfig, architecture_options

NAME = "{name}"


@dataclass(frozen=True)
class {cls}(ExperimentConfig):
    """Full-batch gradient descent on digits at several step sizes.

    Attributes:
        n_train: training points (of scikit-learn's 1,797 digits; 100 are held out for the test set).
        widths: hidden widths of the tanh MLP.
        lrs: step sizes (one run per step size and seed).
        max_steps: gradient steps of every run.
        measure_every: steps between measurements.
    """

    n_train: int = 400
    widths: tuple[int, ...] = (32,)
    lrs: tuple[float, ...] = (0.05, 0.2)
    max_steps: int = 200
    measure_every: int = 20

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {{
        "smoke": {{"n_train": 100, "widths": (8,), "max_steps": 10, "measure_every": 5}},
        "quick": {{}},
        "paper": {{"n_train": 1500, "widths": (128,), "max_steps": 2000, "measure_every": 100, "seeds": (0, 1, 2)}},
    }}

    def _check(self) -> None:
        self._need_positive("n_train", "widths", "lrs", "max_steps", "measure_every")
        self._need(self.n_train <= 1697, "n_train", "an int in [1, 1697] (100 digits are the test set)")

    def grid(self) -> list[tuple[dict[str, Any], TrainConfig]]:
        return [
            (
                {{"lr": lr, "seed": seed}},
                TrainConfig(
                    dataset="digits",
                    dataset_options={{"n_train": self.n_train, "n_test": 100}},
                    data_seed=self.data_seed,
                    model="mlp",
                    model_options=architecture_options("mlp", widths=self.widths),
                    lr=lr,
                    max_steps=self.max_steps,
                    measure_every=self.measure_every,
                    sharpness_subset=min(self.n_train, 100),
                    jacobian_subset=20,
                    seed=seed,
                    device=self.device,
                    dtype=self.dtype,
                    threads=self.threads,
                ),
            )
            for lr in self.lrs
            for seed in self.seeds
        ]


def chapter_configs(preset: str, seed: int, *, n_seeds: int = 1) -> list[{cls}]:
    """The chapter's runs: the preset with training seeds ``seed, ..., seed + n_seeds - 1``
    (``n_seeds``: the chapter's parameter) and ``data_seed = seed``."""
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds={{n_seeds!r}}; accepted: an int >= 1")
    return [{cls}.from_preset(preset, seeds=tuple(range(seed, seed + n_seeds)), data_seed=seed)]


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run (``lr``, ``seed``): its first and last training loss and last sharpness."""
    ordered = runs.sort_values("step").groupby(["lr", "seed"])
    return pd.DataFrame(
        {{
            "first_loss": ordered["train_loss"].first(),
            "last_loss": ordered["train_loss"].last(),
            "last_sharpness": ordered["sharpness"].last(),
        }}
    ).reset_index()


def evaluate(summary: pd.DataFrame) -> dict[str, int]:
    """The numbers of the claim ``{name}.loss_decreases``: ``checks`` (runs) and ``violations`` (runs
    whose last training loss is not below their first)."""
    return {{"violations": int((summary["last_loss"] >= summary["first_loss"]).sum()), "checks": len(summary)}}


EXPERIMENT = register(
    NAME,
    {cls},
    "an MLP on digits at two step sizes (scaffolded example)",
    chapter=NAME,
    chapter_configs=chapter_configs,
)


def _simulated_summary(rng: np.random.Generator, *, falls: bool) -> pd.DataFrame:
    """A summary at the quick design (two step sizes, one seed) whose losses fall by 10-90 % (the
    claim is true) or end 0-50 % above where they started (false)."""
    first = rng.uniform(1.0, 2.0, size=2)
    factor = rng.uniform(0.1, 0.9, size=2) if falls else rng.uniform(1.0, 1.5, size=2)
    return pd.DataFrame({{"first_loss": first, "last_loss": first * factor}})


# The claim's known answer: its rule tried on simulated summaries (the rules page and
# tests/test_known_answers.py run it). Replace it with a simulation of your own data when you
# replace the claim.
claims.known_answer(
    f"{{NAME}}.loss_decreases",
    design="2 runs (two step sizes, one seed), each run's first and last loss",
    truth="true: every run's loss falls by 10-90 %",
    simulate_false=lambda rng: _simulated_summary(rng, falls=False),
    simulate_true=lambda rng: _simulated_summary(rng, falls=True),
    decide=lambda summary: claims.get(f"{{NAME}}.loss_decreases").rule.decide(**evaluate(summary)),
)
'''

CLAIMS = '''"""The claims of the chapter ``{name}`` (scaffolded by ``python -m sharpjac new {name}``)."""

from __future__ import annotations

from .registry import Claim, register
from .rules import Holds

register(
    Claim(
        id="{name}.loss_decreases",
        chapter="{name}",
        statement="Full-batch gradient descent at these step sizes lowers the training loss.",
        statistic="per run, the last training loss against the first; a run whose loss did not fall is a violation",
        rule=Holds(),
        source="companion",
    ),
)
'''

CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
    jupytext_version: 1.19.6
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

This chapter was scaffolded by `python -m sharpjac new {name}`. It trains a small network at two step
sizes and decides one claim from the numbers; replace the experiment and this text with yours (the
steps are in the guide, "Adding a chapter").

```{{code-cell}}
:tags: [parameters]

# Parameters: papermill overrides these
preset = "quick"  # "smoke" | "quick" | "paper"
seed = 0  # the first seed of the block of runs (training seeds seed, seed + 1, ...; data split: seed)
n_seeds = 1  # training seeds
```

```{{code-cell}}
from sharpjac import claims, experiments, tables
from sharpjac.experiments import {name} as chapter

exp = experiments.get("{name}")
(config,) = exp.configs_for(preset, seed, n_seeds=n_seeds)
runs = exp.run(config)
summary = chapter.summarise(runs)
```

## What the runs show

```{{code-cell}}
tables.show(
    summary,
    {{
        "lr": "step size",
        "seed": "seed",
        "first_loss": "first loss",
        "last_loss": "last loss",
        "last_sharpness": "last sharpness",
    }},
    caption="Every run's training loss at its first and last measurement.",
)
```

## The claim

```{{code-cell}}
numbers = chapter.evaluate(summary)
verdict = claims.evaluate(
    "{name}.loss_decreases",
    evidence=f"{{numbers['checks'] - numbers['violations']}} of {{numbers['checks']}} runs end with a lower loss.",
    preset=preset,
    seeds=n_seeds,
    **numbers,
)
verdict.show()
```
"""


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Config"


def _add_to_toc(text: str, name: str) -> str:
    entry = f"      - file: notebooks/executed/{name}\n"
    if _PART in text:
        head, tail = text.split(_PART, 1)
        lines = tail.splitlines(keepends=True)
        i = 0
        while i < len(lines) and lines[i].startswith("      - file:"):
            i += 1
        return head + _PART + "".join(lines[:i]) + entry + "".join(lines[i:])
    marker = "  - caption: Back matter\n"
    if marker not in text:
        return text.rstrip("\n") + "\n" + _PART + entry
    return text.replace(marker, _PART + entry + marker, 1)


def _add_to_chapters(text: str, name: str) -> str:
    match = re.search(r"^CHAPTERS = \((.*?)^\)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError("src/sharpjac/claims/registry.py has no `CHAPTERS = (...)` tuple to add the chapter to")
    return text[: match.end() - 1] + f'    "{name}",\n' + text[match.end() - 1 :]


def new_chapter(root: Path, name: str) -> list[Path]:
    """Write the five files of a new chapter ``name`` under the repository ``root`` (module docstring).

    Raises:
        ValueError: ``name`` is not a lower-case identifier of 2 to 41 characters, or a chapter, an
            experiment or a claims module of that name exists (nothing is written then).

    Returns the paths written, in the order of :data:`FILES`.
    """
    from . import experiments, publish  # publish reads the table of contents (yaml, jupytext)

    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name={name!r} is invalid; accepted: a lower-case identifier such as my_chapter")
    paths = [root / f.format(name=name) for f in FILES]
    taken = [str(p.relative_to(root)) for p in paths[:3] if p.exists()]
    if taken or name in publish.chapters(root) or name in experiments.names():
        raise ValueError(
            f"name={name!r} is taken ({', '.join(taken) or 'a chapter or experiment'}); accepted: a new name"
        )
    fill = {"name": name, "title": _title(name), "cls": _class_name(name)}
    paths[0].write_text(EXPERIMENT.format(**fill))
    paths[1].write_text(CLAIMS.format(**fill))
    paths[2].write_text(CHAPTER.format(**fill))
    paths[3].write_text(_add_to_toc(paths[3].read_text(), name))
    paths[4].write_text(_add_to_chapters(paths[4].read_text(), name))
    return paths
