"""sharpjac.findings: the computed account of what the book found."""

import doctest

import pytest

from sharpjac import claims, findings


def test_every_tallied_claim_is_in_exactly_one_theme():
    tallied = {c.id for c in claims.all_claims() if c.kind == "claim"}
    placed = [cid for t in findings.THEMES for cid in t.claim_ids]
    assert len(placed) == len(set(placed)), "a claim sits in two themes"
    assert set(placed) == tallied


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ({"a.x": "agree", "a.y": "agree", "a.z": "agree"}, "The runs support the paper: all 3 claims agree."),
        ({"a.x": "disagree", "a.y": "disagree", "a.z": "disagree"}, "The runs contradict the paper: all 3"),
        ({"a.x": "inconclusive", "a.y": "inconclusive", "a.z": "inconclusive"}, "Undecided"),
        ({"a.x": "agree", "a.y": "disagree", "a.z": "inconclusive"}, "Mixed: 1 of 3 claims agree, 1 disagrees, 1 is"),
        ({"a.x": "agree", "a.y": "agree"}, "The runs support the paper: both claims agree (1 not run)."),
        ({}, "Not answered in this build: none of its 3 claims was run."),
    ],
)
def test_theme_sentence_is_chosen_by_the_outcomes(outcomes, expected):
    theme = findings.Theme("t", "Q?", ("a.x", "a.y", "a.z"))
    assert expected in theme.sentence(outcomes)
    assert theme.sentence(outcomes).startswith("**Q?** ")


def test_checks_sentence_says_a_failure_is_a_bug():
    ids = ["c.one", "c.two"]
    assert "Yes: all 2 checks pass" in findings.checks_sentence({"c.one": "agree", "c.two": "agree"}, ids)
    bad = findings.checks_sentence({"c.one": "agree", "c.two": "disagree"}, ids)
    assert "No: 1 of 2 checks fail (`c.two`)" in bad and "bug" in bad
    assert "1 of 2 checks pass" in findings.checks_sentence({"c.one": "agree"}, ids)
    assert findings.checks_sentence({}, []) == ""


def test_account_has_one_bullet_per_theme_and_the_checks():
    lines = findings.account({}, check_ids=["c.one"])
    assert len(lines) == len(findings.THEMES) + 1 and all(line.startswith("- **") for line in lines)


def test_docstring_examples():
    assert doctest.testmod(findings).failed == 0


def test_account_keeps_only_registered_claims():
    lines = findings.account(
        {"hessian_structure.residual_shrinks": "agree"}, registered=["hessian_structure.residual_shrinks"]
    )
    assert lines == [
        "- **Is the top of the Hessian the Gauss-Newton part?** The runs support the paper: the claim agree."
    ]


def test_fragility_sentence_counts_the_assessed_outcomes_one_cluster_changes():
    assert findings.fragility_sentence({}) == ""
    assert findings.fragility_sentence({"a.x": None}) == ""
    steady = findings.fragility_sentence({"a.x": False, "a.y": False, "a.z": None})
    assert "None of the 2 assessed outcomes changes" in steady
    shaky = findings.fragility_sentence({"a.x": True, "a.y": False, "a.z": True})
    assert "2 of the 3 assessed outcomes change when one seed or grid point is left out" in shaky
    lines = findings.account({"a.x": "agree"}, registered=["a.x"], fragile={"a.x": True})
    assert any("1 of the 1 assessed" in line for line in lines)
