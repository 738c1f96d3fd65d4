"""Feedback without the hidden tests: what nbgrader's ``GenerateFeedback`` shows a student.

nbgrader's feedback is the autograded notebook rendered as HTML, and that notebook still holds
every test cell's ``### BEGIN HIDDEN TESTS`` region and, where a hidden test failed, a traceback
that quotes its lines. ``HideHiddenTests`` (a preprocessor ``course grade`` adds to
``GenerateFeedback``) removes the regions with nbgrader's own ``ClearHiddenTests`` and, in the
cells that had one, shortens each error to its last line: the check's message, which says what
was expected without the code that tested it.
"""
from __future__ import annotations

from nbgrader.preprocessors import ClearHiddenTests

NOTE = "(the traceback is hidden: this cell holds hidden tests)"


class HideHiddenTests(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests``, which also hides the tracebacks of the cells it cleared."""

    def preprocess_cell(self, cell, resources, cell_index):
        if self._remove_hidden_test_region(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}", NOTE]
        return cell, resources
