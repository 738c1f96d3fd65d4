import numpy as np
import pytest

from course_lib import claims


def test_a_claim_that_holds_prints_its_evidence(capsys):
    assert claims.check("D2", np.bool_(True), {"mean": 0.2501, "p·h": 0.25, "samples": 10000},
                        note="Monte Carlo")
    out = capsys.readouterr().out
    assert "[D2]" in out and claims.LEDGER["D2"] in out
    assert "0.2501" in out and "10,000" in out and "Monte Carlo" in out and "HOLDS" in out
    assert ("D2", True) in claims.checked and "D2: holds" in claims.summary()


def test_a_claim_that_fails_raises_with_the_evidence():
    with pytest.raises(claims.ClaimFailed, match=r"(?s)\[W3\].*gap.*0.3.*DOES NOT HOLD"):
        claims.check("W3", False, {"gap": 0.3})


@pytest.mark.parametrize("args, error, message", [
    (("Z9", True, {"x": 1}), ValueError, "claim_id must be one of the ledger ids"),
    (("W1", True, {}), TypeError, "evidence must be a non-empty dict"),
    (("W1", np.array([True, False]), {"x": 1}), TypeError, "holds must be a single truth value"),
])
def test_bad_calls(args, error, message):
    with pytest.raises(error, match=message):
        claims.check(*args)


@pytest.mark.parametrize("holds", [float("nan"), np.float64("nan"), 0.3, 1, np.int64(1), "no", [True],
                                   None, np.array([0.5]), np.array([[1.0]])])
def test_holds_that_is_not_a_truth_value_is_refused(holds):
    # bool(nan), bool(0.3), bool("no") and bool([True]) are all true: a claim must not hold by accident
    with pytest.raises(TypeError, match="holds must be a single truth value"):
        claims.check("D1", holds, {"gap": 0.1})


@pytest.mark.parametrize("holds, held", [(True, True), (np.bool_(True), True), (np.array(True), True),
                                         (np.array([True]), True), (np.array([[False]]), False)])
def test_boolean_scalars_and_one_element_arrays_are_accepted(holds, held, capsys):
    if held:
        assert claims.check("D1", holds, {"gap": 0.1})
    else:
        with pytest.raises(claims.ClaimFailed):
            claims.check("D1", holds, {"gap": 0.1})
    assert claims.checked[-1] == ("D1", held)


def test_a_backend_boolean_scalar_is_accepted(capsys):
    from keras import ops
    assert claims.check("D1", ops.greater(ops.convert_to_tensor(2.0), 1.0), {"gap": 0.1})


def test_a_qualified_claim_says_it_does_not_hold_as_stated(capsys):
    what = "fine-tuning a pretrained encoder neither clearly helps nor clearly hurts on the digits"
    assert claims.check("G3", True, {"fine-tuned − scratch": "-1.3 points"}, note="3 seeds", qualified=what)
    out = capsys.readouterr().out
    header, qualification = out.splitlines()[:2]
    assert header == f"[G3] {claims.LEDGER['G3']}"
    assert qualification.strip() == f"does not hold as stated; what holds: {what}"
    verdict = out.splitlines()[-1].strip()
    assert verdict.startswith("-> HOLDS AS QUALIFIED") and "does not hold as stated" in verdict
    line = claims.summary().splitlines()[-1]
    assert line.startswith(f"G3: does not hold as stated; what holds: {what}")
    assert "G3: holds" not in line


def test_a_failed_qualified_claim_raises():
    with pytest.raises(claims.ClaimFailed, match="DOES NOT HOLD, not even as qualified"):
        claims.check("G4", False, {"coverage": 1.0}, qualified="a fitted Gaussian generates too")


def test_an_erratum_is_printed_and_summarised(capsys):
    claims.check("A5", True, {"activations": 15_237_608}, erratum="the total memory is 15.2M values, not 24M")
    out = capsys.readouterr().out
    assert "erratum: the total memory is 15.2M values, not 24M" in out and out.splitlines()[-1].strip() == "-> HOLDS"
    assert claims.summary().splitlines()[-1] == f"A5: holds - {claims.LEDGER['A5']}; erratum: the total memory is 15.2M values, not 24M"


@pytest.mark.parametrize("keywords, error", [({"qualified": 1}, TypeError), ({"erratum": None}, TypeError),
                                             ({"qualified": "a", "erratum": "b"}, ValueError)])
def test_bad_qualifications(keywords, error):
    with pytest.raises(error, match="qualified|erratum"):
        claims.check("G4", True, {"x": 1}, **keywords)


def test_ledger_matches_the_design_brief_ids():
    expected = {f"W{i}" for i in range(1, 5)} | {f"D{i}" for i in range(1, 5)} | \
        {f"T{i}" for i in range(1, 4)} | {f"F{i}" for i in range(1, 4)} | \
        {f"A{i}" for i in range(1, 10)} | {f"G{i}" for i in range(1, 5)}
    assert set(claims.LEDGER) == expected


def test_small_and_large_numbers_are_readable():
    assert claims._format(1.23456e-9) == "1.235e-09"
    assert claims._format(0.5) == "0.5"
    assert claims._format(True) == "yes"
