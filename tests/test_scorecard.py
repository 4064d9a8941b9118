"""Tests of sharpjac.scorecard on fake executed notebooks built with nbformat."""

from __future__ import annotations

import doctest

import nbformat
import pytest

from sharpjac import claims, scorecard
from sharpjac.claims import registry


@pytest.fixture
def fake_claims(monkeypatch):
    """Three registered claims (two in weight_decay, one in batch_size) in an otherwise empty registry."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    claims.register(
        claims.Claim("weight_decay.tracks", "weight_decay", "The Jacobian | tracks the gap.", "d", claims.Sign(+1)),
        claims.Claim("weight_decay.bound", "weight_decay", "A bound holds.", "v", claims.Holds(), source="companion"),
        claims.Claim("batch_size.effect", "batch_size", "Large batches are sharper.", "r", claims.AtLeast(1.0)),
    )


def _verdict(cid, **numbers):
    return claims.evaluate(cid, evidence="Computed **here**.", preset="quick", seeds=5, **numbers)


def _notebook(root, name, *verdicts, title="Weight decay"):
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nText."), nbformat.v4.new_code_cell("x = 1")]
    for v in verdicts:
        bundle = v._repr_mimebundle_() if isinstance(v, claims.Verdict) else v
        cells.append(
            nbformat.v4.new_code_cell("v.show()", outputs=[nbformat.v4.new_output("display_data", data=bundle)])
        )
    nb.cells = cells
    path = root / "notebooks" / "executed" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_recorded_and_not_run_claims(tmp_path, fake_claims):
    _notebook(
        tmp_path,
        "weight_decay",
        _verdict("weight_decay.tracks", estimate=0.2, low=0.1, high=0.3, label="Δ|ρ|"),
        _verdict("weight_decay.bound", violations=1, checks=4),
    )
    assert scorecard.counts(tmp_path) == {"agree": 1, "disagree": 1, "inconclusive": 0, "not run": 1}
    path = scorecard.write(tmp_path)
    assert path == tmp_path / "book" / "scorecard.md"
    page = path.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| {bdg")]
    assert len(rows) == 3  # one row per registered claim, in book order
    # outcome and key number first (they stay in view when the table scrolls on a phone)
    assert rows[0].startswith("| {bdg-danger}`Disagree` | 1 of 4 checks fail | A bound holds. *(companion)* |")
    assert rows[1].startswith("| {bdg-success}`Agree` | Δ\\|ρ\\| = 0.2 [0.1, 0.3] | The Jacobian \\| tracks the gap. |")
    assert rows[1].endswith("| quick | 5 seeds | not assessed |")  # no unit recorded: its seeds
    assert '<a href="../notebooks/executed/weight_decay.html#claim-weight_decay-tracks">Weight decay</a>' in rows[1]
    assert rows[2].startswith("| {bdg-light}`not run` |  | Large batches are sharper. |")
    assert "<a " not in rows[2]
    counts = (tmp_path / "book" / "_scorecard_counts.md").read_text()
    assert counts.startswith("3 claims: 1 agree, 1 disagree, 0 inconclusive, 1 not run; see the {doc}`scorecard")
    assert counts.splitlines()[0] in page
    assert scorecard.check(tmp_path) == [
        "batch_size.effect: not run (no record in notebooks/executed/batch_size.ipynb)"
    ]
    text = scorecard.text_table(tmp_path)
    assert text.splitlines()[0].startswith("disagree") and text.splitlines()[2].startswith("not run")


def test_check_is_empty_when_every_claim_ran(tmp_path, fake_claims):
    _notebook(
        tmp_path,
        "weight_decay",
        _verdict("weight_decay.tracks", estimate=0.2, low=-0.1, high=0.3),
        _verdict("weight_decay.bound", violations=0, checks=4),
    )
    _notebook(tmp_path, "batch_size", _verdict("batch_size.effect", value=1.3), title="Batch size")
    assert scorecard.check(tmp_path) == []
    assert scorecard.counts(tmp_path) == {"agree": 2, "disagree": 0, "inconclusive": 1, "not run": 0}
    assert "not run" not in scorecard.render(tmp_path)[1]


def test_check_catches_unregistered_misplaced_and_malformed_records(tmp_path, fake_claims):
    good = _verdict("weight_decay.tracks", estimate=0.2, low=0.1, high=0.3)
    stray = dict(good._repr_mimebundle_())
    stray[claims.MIME] = {**good.record(), "id": "weight_decay.gone"}
    bad_outcome = dict(good._repr_mimebundle_())
    bad_outcome[claims.MIME] = {**_verdict("weight_decay.bound", violations=0, checks=1).record(), "outcome": "yes"}
    _notebook(tmp_path, "weight_decay", good, stray, bad_outcome, {claims.MIME: {"no": "id"}})
    _notebook(tmp_path, "batch_size", _verdict("weight_decay.tracks", estimate=0.2, low=0.1, high=0.3))
    problems = scorecard.check(tmp_path)
    assert "weight_decay.gone: recorded in weight_decay.ipynb but not registered" in problems
    assert "weight_decay.bound: not run (record without a valid outcome: 'yes')" in problems
    assert "batch_size.effect: not run (no record in notebooks/executed/batch_size.ipynb)" in problems
    # a claim recorded by another chapter is reported; its own chapter's record still counts
    assert "weight_decay.tracks: recorded in batch_size.ipynb but registered for chapter weight_decay" in problems
    assert "weight_decay.ipynb: a claim record is not a JSON object with an id" in problems
    # the page still renders; an unregistered record gets no row
    page, _ = scorecard.render(tmp_path)
    assert "weight_decay.gone" not in page and page.count("| {bdg") == 3
    assert page.count("{bdg-success}`Agree`") == 1


def test_no_chapter_run_yet(tmp_path, fake_claims):
    path = scorecard.write(tmp_path)  # no notebooks/executed at all
    page = path.read_text()
    assert "No chapter with claims has been executed yet" in page
    assert page.count("{bdg-light}`not run`") == 3
    assert len(scorecard.check(tmp_path)) == 3


def test_empty_registry(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    page, line = scorecard.render(tmp_path)
    assert "No claims are registered." in page and line.startswith("No claims are registered yet")
    assert scorecard.check(tmp_path) == []


def test_unreadable_notebook_is_reported(tmp_path, fake_claims):
    path = tmp_path / "notebooks" / "executed" / "weight_decay.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    problems = scorecard.check(tmp_path)
    assert any(p.startswith("weight_decay.ipynb: cannot be read") for p in problems)
    scorecard.write(tmp_path)  # no crash


def test_main_exit_code(tmp_path, fake_claims, capsys):
    _notebook(tmp_path, "weight_decay", _verdict("weight_decay.tracks", estimate=0.2, low=0.1, high=0.3))
    assert scorecard.main([str(tmp_path)]) == 0
    assert scorecard.main([str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "problem: batch_size.effect: not run" in out


def test_docstring_examples():
    assert doctest.testmod(scorecard).failed == 0


def test_checks_and_information_are_not_tallied(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    claims.register(
        claims.Claim("weight_decay.tracks", "weight_decay", "Tracks.", "d", claims.Sign(+1)),
        claims.Claim("weight_decay.identity", "weight_decay", "An identity.", "v", claims.Holds(), kind="check"),
        claims.Claim("weight_decay.info", "weight_decay", "A ratio.", "r", claims.AtMost(1.0), kind="information"),
    )
    _notebook(
        tmp_path,
        "weight_decay",
        _verdict("weight_decay.tracks", estimate=-0.2, low=-0.3, high=-0.1, label="d"),
        _verdict("weight_decay.identity", violations=0, checks=4),
        _verdict("weight_decay.info", value=3.0, label="ratio"),
    )
    # one claim (disagree); the check that holds and the information are left out of the tally
    assert scorecard.counts(tmp_path) == {"agree": 0, "disagree": 1, "inconclusive": 0, "not run": 0}
    assert scorecard.check(tmp_path) == []


def test_claim_kind_is_validated():
    with pytest.raises(ValueError, match="kind='theorem' is invalid; accepted: claim, check, information"):
        claims.Claim("weight_decay.x", "weight_decay", "S.", "s", claims.Holds(), kind="theorem")


def test_registered_checks_are_the_identities_and_bounds():
    """Only identities and proven bounds are checks; every empirical rule stays a tallied claim."""
    kinds = {c.id: c.kind for c in claims.all_claims()}
    checks = sorted(i for i, k in kinds.items() if k == "check")
    assert checks == sorted(
        [
            "conjugate_matrix.equal_spectra",
            "conjugate_matrix.first_layer_absent",
            "ansatz.proposition_a_holds",
            "ansatz.rescaling_mediates",
            "ansatz.linear_does_not_sharpen",
            "t1_covering.bound_holds",
            "t2_lipschitz.sandwich_holds",
            "t3_low_loss.mse_bound_holds",
            "t3_low_loss.ce_bound_holds",
            "t3_low_loss.random_labels_bound_holds",
            "t4_generalisation.bound_holds_measured",
            "t4_generalisation.bound_holds_t1",
        ]
    )
    assert [i for i, k in kinds.items() if k == "information"] == ["t4_generalisation.bound_informative"]
