"""Repairing submissions whose cell metadata was lost, by aligning them with the release."""
import copy
import json
from pathlib import Path

import pytest

from course_lib.grading.repair import repair

ROOT = Path(__file__).resolve().parents[1]
PS = "ps1_regularization"


def grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


@pytest.fixture(scope="module")
def release():
    return json.loads((ROOT / "release" / PS / f"{PS}.ipynb").read_text())


@pytest.fixture(scope="module")
def solved(release):
    """The release with the instructor's answers written in, as a good student hands it in."""
    source = {grade_id(c): c for c in json.loads((ROOT / "source" / PS / f"{PS}.ipynb").read_text())["cells"]}
    notebook = copy.deepcopy(release)
    for cell in notebook["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            cell["source"] = source[grade_id(cell)]["source"]
    return notebook


def strip(notebook):
    stripped = copy.deepcopy(notebook)
    for cell in stripped["cells"]:
        cell["metadata"] = {}
    return stripped


def test_a_complete_submission_comes_back_unchanged(solved):
    fixed = repair(solved, solved)
    assert not fixed.changed and fixed.notebook == solved and fixed.describe() == ""


def test_stripped_metadata_is_restored_cell_by_cell(solved, release):
    fixed = repair(strip(solved), release)
    assert [grade_id(c) for c in fixed.notebook["cells"]] == [grade_id(c) for c in solved["cells"]]
    assert [c["source"] for c in fixed.notebook["cells"]] == [c["source"] for c in solved["cells"]], \
        "the student's answers are kept as written"
    assert [c["metadata"] for c in fixed.notebook["cells"]] == [c["metadata"] for c in release["cells"]]
    assert fixed.changed and not fixed.reinserted
    assert "cell metadata restored from the release for" in fixed.describe()


def test_added_cells_stay_plain_and_deleted_tests_come_back(solved, release):
    damaged = strip(solved)
    ids = [grade_id(c) for c in solved["cells"]]
    answer = ids.index("l2_penalty")
    scratch = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
               "source": "print('trying things')"}
    del damaged["cells"][ids.index("test_sgd_step")]
    damaged["cells"].insert(answer, scratch)
    damaged["cells"][answer + 1]["source"] = "# my answer\n" + "".join(damaged["cells"][answer + 1]["source"])

    fixed = repair(damaged, release)
    got = [grade_id(c) for c in fixed.notebook["cells"]]
    assert got == ids[:answer] + [None] + ids[answer:], "scratch cell without metadata, the test cell back in place"
    assert fixed.notebook["cells"][answer]["source"] == scratch["source"]
    assert fixed.notebook["cells"][answer + 1]["source"].startswith("# my answer")
    assert fixed.reinserted == ["test_sgd_step"]
    assert "deleted locked cells put back: test_sgd_step" in fixed.describe()


def test_one_lost_answer_cell_is_found_among_the_others(solved, release):
    damaged = copy.deepcopy(solved)
    ids = [grade_id(c) for c in solved["cells"]]
    damaged["cells"][ids.index("dropout")]["metadata"] = {}
    fixed = repair(damaged, release)
    assert fixed.restored_metadata == ["dropout"]
    assert [grade_id(c) for c in fixed.notebook["cells"]] == ids


def test_copies_of_a_cell_become_plain_cells(solved, release):
    damaged = copy.deepcopy(solved)
    ids = [grade_id(c) for c in solved["cells"]]
    test = ids.index("test_dropout_forward")
    twin = copy.deepcopy(damaged["cells"][test])
    twin["source"] = "pass"
    damaged["cells"].insert(test, twin)
    fixed = repair(damaged, release)
    assert fixed.duplicates == ["test_dropout_forward"]
    cells = fixed.notebook["cells"]
    assert grade_id(cells[test]) is None and cells[test]["source"] == "pass" and "editable" not in cells[test]["metadata"]
    assert grade_id(cells[test + 1]) == "test_dropout_forward", "the copy like the release keeps the grading"
    assert "copies of test_dropout_forward graded as plain cells" in fixed.describe()
