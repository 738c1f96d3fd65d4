"""The grading round trip: `course verify` on every assignment, through nbgrader."""
import pytest

from course_lib.grading import pipeline

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("assignment", pipeline.assignment_names(pipeline.find_course_root()))
def test_assignment_is_proven(assignment, root):
    report = pipeline.verify(assignment, root, jobs=2, log=lambda *_: None)
    print(report.table())
    assert report.passed, report.table()
