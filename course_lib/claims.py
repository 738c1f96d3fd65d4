"""Asserting what the lecture claims, by ledger id, with the evidence printed.

    from course_lib import claims
    claims.check("D2", abs(mean - p * h) < 3 * stderr,
                 {"Monte Carlo mean": mean, "p·h": p * h, "3 standard errors": 3 * stderr})

prints the claim, each number of evidence and the verdict, and raises ``ClaimFailed``
when the claim does not hold, so a notebook run (and CI) stops at the broken lesson.

Where the lecture is wrong or only sometimes right, the notebook asserts what does hold and says
so in the verdict, not only in a note:

    claims.check("G3", within_noise and not clear_help, evidence,
                 qualified="pretraining neither clearly helps nor hurts on the digits")

prints "does not hold as stated; what holds: ..." under the claim, "HOLDS AS QUALIFIED" as the
verdict, and ``summary()`` repeats it. ``holds`` must be a real truth value (a bool, a NumPy bool,
a one-element boolean array): a float such as NaN is refused, not read as true.
"""
from __future__ import annotations

import numbers

import numpy as np

LEDGER = {
    "W1": "L2 penalty λ/2‖W‖² has gradient λW; each SGD step shrinks W by αλW",
    "W2": "L2-in-the-loss equals decoupled weight decay for plain SGD, not for Adam",
    "W3": "weight decay reduces overfitting",
    "W4": "erratum: the slide's update omits α on the data gradient",
    "D1": "dropout reduces overfitting",
    "D2": "E[h] = p·h, so scaling by p at test time keeps the expectation; inverted dropout is equivalent",
    "D3": "test-time scaling approximates the ensemble (geometric mean) of thinned networks",
    "D4": "p ≈ 0.5 is a good default",
    "T1": "with little similar data, a linear classifier on pretrained features beats training from scratch",
    "T2": "with more data, fine-tuning a few layers beats the linear probe",
    "T3": "early layers are generic, late layers specific: for a different dataset, earlier features transfer better",
    "F1": "frameworks compute gradients automatically",
    "F2": "a computation graph compiles for CPU/GPU/TPU",
    "F3": "hardware FLOP/s (GTX 580 0.2 T, P100 11 T, V100 125 T, TPU 180 T)",
    "A1": "LeNet: CONV-POOL-CONV-POOL-FC-FC, 5x5 convs, 2x2 pools",
    "A2": "AlexNet conv1: 55x55x96 output, 34,848 weights; pool1 27x27x96, 0 params",
    "A3": "ZFNet changes conv1 to 7x7 stride 2, conv3-5 to 512/1024/512",
    "A4": "three stacked 3x3 convs see 7x7 with 27C² params instead of 49C²",
    "A5": "VGG16: 138M params; most memory in early convs, most params in FC",
    "A6": "GoogLeNet's inception module with 1x1 bottlenecks saves parameters and ops",
    "A7": "a deeper plain net has higher training error than a shallower one; residual connections fix it",
    "A8": "ResNet: residual blocks, stride-2 doubling, no FC but the classifier; depths 34/50/101/152",
    "A9": "accuracy vs operations vs parameters across the architectures",
    "G1": "k-means and PCA find structure without labels",
    "G2": "an autoencoder learns a compact code that reconstructs its input (better than PCA at the same size)",
    "G3": "an encoder pretrained without labels helps a classifier trained on few labels",
    "G4": "a VAE generates new samples; sampling a plain autoencoder's code space does not",
}

checked: list[tuple[str, bool]] = []  # (claim id, held) for every check made in this process
verdicts: list[str] = []  # the summary line of every check, in the order of ``checked``


class ClaimFailed(AssertionError):
    """The lecture's claim did not hold in this run."""


def _format(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:.4g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _truth(holds) -> bool:
    """``holds`` as a bool: a bool, a NumPy bool or a one-element boolean array (NumPy, JAX,
    TensorFlow); anything else (a float such as NaN, a number, a string, a list) is refused,
    since ``bool()`` of it says "true" for NaN, 0.3 or "no"."""
    if isinstance(holds, (bool, np.bool_)):
        return bool(holds)
    if getattr(holds, "dtype", None) is not None and getattr(holds, "shape", None) is not None:
        array = np.asarray(holds)
        if array.dtype == np.bool_ and array.size == 1:
            return bool(array.reshape(()))
    raise TypeError("holds must be a single truth value (a bool, a NumPy bool or a one-element boolean array, "
                    f"the outcome of a comparison); got {holds!r} of type {type(holds).__name__}")


def _sentence(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string; got {value!r} of type {type(value).__name__}")
    return " ".join(value.split())


def check(claim_id: str, holds, evidence: dict, *, note: str = "", qualified: str = "",
          erratum: str = "") -> bool:
    """Print the claim and its evidence; raise ``ClaimFailed`` if ``holds`` is false.

    claim_id   an id of the ledger (``LEDGER``), e.g. ``"W2"``.
    holds      the outcome of the test the notebook ran: a bool, a NumPy bool or a one-element
               boolean array. Anything else raises ``TypeError`` (``bool(nan)`` is true).
    evidence   the numbers behind the verdict, by name, in the order to print them.
    note       one line of interpretation: what was tested, or how the claim is qualified.
    qualified  when the lecture's sentence does not hold as stated (only partly, only sometimes, or
               not at all on this data): what holds instead, in one sentence; ``holds`` is then the
               outcome of testing that sentence. The header, the verdict and ``summary()`` say
               "does not hold as stated; what holds: ...".
    erratum    where the claim holds but the slide gets a number or a detail beside it wrong: the
               correction, in one sentence, repeated by ``summary()``.
    """
    if claim_id not in LEDGER:
        raise ValueError(f"claim_id must be one of the ledger ids ({', '.join(LEDGER)}); got {claim_id!r}")
    if not isinstance(evidence, dict) or not evidence:
        raise TypeError("evidence must be a non-empty dict of named numbers; got "
                        f"{evidence!r}")
    held = _truth(holds)
    note, qualified, erratum = (_sentence(name, value) for name, value in
                                (("note", note), ("qualified", qualified), ("erratum", erratum)))
    if qualified and erratum:
        raise ValueError("give qualified (the lecture's sentence does not hold as stated) or erratum (it holds, "
                         "a detail beside it is wrong), not both")
    width = max(len(name) for name in evidence)
    lines = [f"[{claim_id}] {LEDGER[claim_id]}"]
    if qualified:
        lines.append(f"    does not hold as stated; what holds: {qualified}")
    if erratum:
        lines.append(f"    erratum: {erratum}")
    lines += [f"    {name:<{width}}  {_format(value)}" for name, value in evidence.items()]
    if note:
        lines.append(f"    {note}")
    if qualified:
        verdict = ("HOLDS AS QUALIFIED (what holds, above); the lecture's sentence does not hold as stated" if held
                   else "DOES NOT HOLD, not even as qualified")
    else:
        verdict = "HOLDS" if held else "DOES NOT HOLD"
    lines.append(f"    -> {verdict}")
    report = "\n".join(lines)
    print(report)
    checked.append((claim_id, held))
    if not held:
        verdicts.append(f"{claim_id}: FAILED - {LEDGER[claim_id]}" + (f" (qualified: {qualified})" if qualified else ""))
        raise ClaimFailed(report)
    if qualified:
        verdicts.append(f"{claim_id}: does not hold as stated; what holds: {qualified} (lecture: {LEDGER[claim_id]})")
    else:
        verdicts.append(f"{claim_id}: holds - {LEDGER[claim_id]}" + (f"; erratum: {erratum}" if erratum else ""))
    return True


def summary() -> str:
    """One line per claim checked so far in this process, for the end of a notebook: "holds", "does
    not hold as stated; what holds: ..." (a qualified claim) or "FAILED"."""
    if not checked:
        return "no claims checked yet"
    return "\n".join(verdicts)
