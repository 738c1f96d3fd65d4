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


def test_ledger_matches_the_design_brief_ids():
    expected = {f"W{i}" for i in range(1, 5)} | {f"D{i}" for i in range(1, 5)} | \
        {f"T{i}" for i in range(1, 4)} | {f"F{i}" for i in range(1, 4)} | \
        {f"A{i}" for i in range(1, 10)} | {f"G{i}" for i in range(1, 5)}
    assert set(claims.LEDGER) == expected


def test_small_and_large_numbers_are_readable():
    assert claims._format(1.23456e-9) == "1.235e-09"
    assert claims._format(0.5) == "0.5"
    assert claims._format(True) == "yes"
