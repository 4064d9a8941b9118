"""The one mapping from a chapter's parameters to its runs (``Experiment.configs_for``), as the paper
pre-flight (``publish missing``) and the command line call it, and the request log that lets a test
compare what the pre-flight lists with what an executed chapter asked for."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest

from sharpjac import cli, experiments, publish, request_log
from sharpjac.experiments.base import ExperimentConfig, run_experiment
from sharpjac.runs import RunStore, config_key
from sharpjac.training import TrainConfig

NAME = "mapping_test"


@dataclass(frozen=True)
class SeedsConfig(ExperimentConfig):
    """One tiny run per seed."""

    PRESETS = {"smoke": {}, "quick": {}, "paper": {}}

    def grid(self):
        tc = TrainConfig(
            dataset="digits",
            dataset_options={"n_train": 40, "n_test": 20},
            model="mlp",
            model_options={"widths": [6], "activation": "tanh"},
            max_steps=2,
            measure_every=2,
            sharpness_subset=8,
            jacobian_subset=4,
            lanczos_max_iter=3,
            device="cpu",
        )
        return [({"seed": s}, dataclasses.replace(tc, seed=s, data_seed=self.data_seed)) for s in self.seeds]


def chapter_configs(preset: str, seed: int, *, n_seeds: int = 1) -> list[SeedsConfig]:
    return [SeedsConfig.from_preset(preset, seeds=tuple(range(seed, seed + n_seeds)), data_seed=seed)]


@pytest.fixture()
def exp():
    yield experiments.register(NAME, SeedsConfig, "tiny runs (mapping tests)", chapter_configs=chapter_configs)
    experiments._REGISTRY.pop(NAME, None)  # noqa: SLF001 - the test's own registration


def test_run_parameters_keep_preset_seed_and_what_chapter_configs_accepts(exp):
    params = {"preset": "paper", "seed": 3, "n_seeds": 2, "method": "kendall", "fraction": 0.8}
    assert exp.run_parameters(params) == {"preset": "paper", "seed": 3, "n_seeds": 2}
    assert exp.run_parameters({}) == {"preset": "quick", "seed": 0}
    (config,) = exp.configs_for_chapter(params)
    assert config.seeds == (3, 4) and config.data_seed == 3


def test_an_experiment_without_chapter_configs_runs_its_preset():
    # every registered experiment has its own mapping now: build one without, from data's config class
    data = experiments.get("data")
    e = experiments.Experiment("no_mapping", "an experiment without chapter_configs", data.config_cls)
    assert e.chapter_configs is None
    assert e.run_parameters({"preset": "smoke", "seed": 2, "n_seeds": 5}) == {"preset": "smoke", "seed": 2}
    assert e.configs_for_chapter({"preset": "smoke", "seed": 0}) == [e.preset("smoke")]


def test_preflight_uses_the_chapters_parameters(exp, tmp_path):
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: notebooks/executed/ch\n")
    cell = '```{code-cell}\n:tags: [parameters]\npreset = "quick"\nseed = 0\nn_seeds = 3\nmethod = "pearson"\n```\n'
    use = f'```{{code-cell}}\nexp = experiments.get("{NAME}")\n```\n'
    (root / "notebooks" / "ch.md").write_text(cell + use)
    store = RunStore(tmp_path / "store")
    # the defaults of the parameters cell: three seeds from 0
    missing = publish.missing_runs(root, ["ch"], preset="paper", store=store)
    assert [m.labels for m in missing] == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    assert missing[0].parameters == {"seed": 0, "n_seeds": 3}
    # given parameters (those a chapter is executed with) replace them; the preset argument wins
    given = {"ch": {"preset": "quick", "seed": 5, "n_seeds": 2, "method": "kendall"}}
    missing = publish.missing_runs(root, ["ch"], preset="paper", store=store, parameters=given)
    assert [m.labels for m in missing] == [{"seed": 5}, {"seed": 6}]
    assert [m.key for m in missing] == [config_key(tc) for _, tc in chapter_configs("paper", 5, n_seeds=2)[0].grid()]
    report = publish.missing_report(missing, preset="paper", store_root=store.root)
    assert f"python -m sharpjac run {NAME} --preset paper --seed 5 --param n_seeds=2" in report


def test_command_line_runs_the_chapters_configs(exp, tmp_path, capsys):
    out = tmp_path / "t.csv"
    argv = ["run", NAME, "--preset", "smoke", "--seed", "4", "--param", "n_seeds=2", "--cache", str(tmp_path / "s")]
    assert cli.main([*argv, "--output", str(out), "--no-progress"]) == 0
    store = RunStore(tmp_path / "s")
    assert all(store.has(tc) for _, tc in chapter_configs("smoke", 4, n_seeds=2)[0].grid())
    assert "2 runs" in capsys.readouterr().out
    assert cli.main([*argv[:-2], "--param", "n_seeds"]) == 2
    assert "--param 'n_seeds' is not NAME=VALUE" in capsys.readouterr().err
    assert cli.main([*argv[:-2], "--param", "colour=1"]) == 2  # chapter_configs refuses unknown names
    assert "colour" in capsys.readouterr().err


def test_request_log_lists_every_run_an_experiment_asks_for(exp, tmp_path, monkeypatch):
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv(request_log.ENV, str(log))
    (config,) = chapter_configs("smoke", 0, n_seeds=2)
    store = RunStore(tmp_path / "store")
    run_experiment(config, name=NAME, store=store, progress=False)
    run_experiment(config, name=NAME, store=store, progress=False)  # from the store: still requested
    keys = [config_key(tc) for _, tc in config.grid()]
    assert [r["key"] for r in request_log.read(log)] == keys + keys
    assert {r["experiment"] for r in request_log.read(log)} == {NAME}
    assert all(json.loads(line) for line in log.read_text().splitlines())
    monkeypatch.delenv(request_log.ENV)
    run_experiment(config, name=NAME, store=store, progress=False)
    assert len(request_log.read(log)) == 4  # unset: nothing written
    with pytest.raises(ValueError, match="kind='table'; accepted"):
        monkeypatch.setenv(request_log.ENV, str(log))
        request_log.record("table", "x")
