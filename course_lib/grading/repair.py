"""Repair a submission by aligning its cells with the release it was made from.

nbgrader finds a notebook's answers and tests by the ``nbgrader`` entry of each cell's metadata.
Some editors and upload paths drop cell metadata, and students delete cells they should not;
nbgrader then grades the notebook as if the answers were missing. ``repair`` puts back what
the release says is there:

* **Anchors.** The release's locked cells (instructions, setup, tests) are matched to the
  submission's cells of the same type and the same source, in order (``difflib``'s longest
  matching blocks over the cell sequences). A matched cell gets its release metadata back.
* **Answers.** Between two anchors, each release answer cell (``solution``) takes the
  metadata of the submission's cell of its type in the same gap that is most like it (the
  stub the student filled in: ``def l2_penalty(...)``). Cells a student added keep no metadata.
* **Deleted locked cells** (a test cell removed) are put back from the release where they
  belong, so the tests run; nbgrader overwrites the source of locked cells anyway.
* **Copies** of a cell (the same grade_id twice, which nbgrader refuses): the copy most like
  the release's cell keeps the metadata, the others become plain cells.

The result lists what was done, so the grader's report can say the submission was repaired.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field

# The metadata nbgrader writes into a release: its own entry, and the locks JupyterLab honours.
GRADING_KEYS = ("nbgrader", "deletable", "editable")


@dataclass
class Repair:
    notebook: dict
    restored_metadata: list[str] = field(default_factory=list)  # grade_ids given back to cells
    reinserted: list[str] = field(default_factory=list)  # locked cells put back from the release
    duplicates: list[str] = field(default_factory=list)  # grade_ids found on several cells

    @property
    def changed(self) -> bool:
        return bool(self.restored_metadata or self.reinserted or self.duplicates)

    def describe(self) -> str:
        parts = []
        if self.restored_metadata:
            parts.append(f"cell metadata restored from the release for {', '.join(self.restored_metadata)}")
        if self.reinserted:
            parts.append(f"deleted locked cells put back: {', '.join(self.reinserted)}")
        if self.duplicates:
            parts.append(f"copies of {', '.join(self.duplicates)} graded as plain cells")
        return "; ".join(parts)


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return ("".join(source) if isinstance(source, list) else source).strip()


def _key(cell: dict) -> tuple[str, str]:
    return cell.get("cell_type", ""), _source(cell)


def _drop_duplicates(result: Repair, wanted: dict) -> None:
    """A grade_id on several cells (a copied test cell): the copy most like the release's cell
    keeps it, the others become plain cells (nbgrader refuses such a notebook otherwise)."""
    cells = result.notebook.get("cells", [])
    for grade_id in dict.fromkeys(_nbgrader(c).get("grade_id") for c in cells):
        copies = [c for c in cells if grade_id and _nbgrader(c).get("grade_id") == grade_id]
        if len(copies) < 2:
            continue
        reference = _source(wanted[grade_id]) if grade_id in wanted else ""
        keep = max(copies, key=lambda c: difflib.SequenceMatcher(a=reference, b=_source(c), autojunk=False).ratio())
        for cell in copies:
            if cell is not keep:
                for key in GRADING_KEYS:
                    cell.get("metadata", {}).pop(key, None)
        result.duplicates.append(grade_id)


def repair(submission: dict, release: dict) -> Repair:
    """The submission with the release's nbgrader metadata on the cells it belongs to, and
    deleted locked cells put back (see the module docstring). Cells that already carry their
    metadata are left as they are; a complete submission comes back unchanged."""
    wanted = {_nbgrader(c)["grade_id"]: c for c in release.get("cells", []) if _nbgrader(c).get("grade_id")}
    result = Repair(copy.deepcopy(submission))
    _drop_duplicates(result, wanted)
    present = {_nbgrader(c).get("grade_id") for c in result.notebook.get("cells", [])}
    if set(wanted) <= present:
        return result
    cells, reference = result.notebook["cells"], release["cells"]
    locked = [i for i, c in enumerate(reference) if _nbgrader(c).get("locked")]
    matcher = difflib.SequenceMatcher(a=[_key(reference[i]) for i in locked], b=[_key(c) for c in cells],
                                      autojunk=False)
    anchors = []  # (release index, submission index) of matched locked cells, in order
    for block in matcher.get_matching_blocks():
        anchors += [(locked[block.a + k], block.b + k) for k in range(block.size)]

    def give(cell: dict, from_release: dict) -> None:
        grade_id = _nbgrader(from_release)["grade_id"]
        if _nbgrader(cell).get("grade_id") != grade_id:
            metadata = cell.setdefault("metadata", {})
            for key in GRADING_KEYS:
                if key in from_release.get("metadata", {}):
                    metadata[key] = copy.deepcopy(from_release["metadata"][key])
            result.restored_metadata.append(grade_id)

    for r, s in anchors:
        give(cells[s], reference[r])
    # Answers: the gaps between consecutive anchors (and before the first, after the last).
    bounds = [(-1, -1), *anchors, (len(reference), len(cells))]
    for (r0, s0), (r1, s1) in zip(bounds, bounds[1:]):
        free = [s for s in range(s0 + 1, s1) if not _nbgrader(cells[s]).get("grade_id")]
        for r in range(r0 + 1, r1):
            answer = reference[r]
            if not _nbgrader(answer).get("solution") or _nbgrader(answer)["grade_id"] in present:
                continue
            same_type = [s for s in free if cells[s].get("cell_type") == answer.get("cell_type")]
            if same_type:
                best = max(same_type, key=lambda s: difflib.SequenceMatcher(
                    a=_source(answer), b=_source(cells[s]), autojunk=False).ratio())
                give(cells[best], answer)
                free.remove(best)
    # Locked cells still missing: put them back after the cell that precedes them in the release.
    have = {_nbgrader(c).get("grade_id") for c in cells}
    for r, cell in enumerate(reference):
        grade_id = _nbgrader(cell).get("grade_id")
        if not _nbgrader(cell).get("locked") or grade_id in have:
            continue
        before = {_nbgrader(c).get("grade_id") for c in reference[:r]}
        position = max((i + 1 for i, c in enumerate(cells) if _nbgrader(c).get("grade_id") in before), default=0)
        cells.insert(position, copy.deepcopy(cell))
        have.add(grade_id)
        result.reinserted.append(grade_id)
    return result
