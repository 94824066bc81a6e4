"""nbgrader round trip for every chapter: instructors can generate, run and grade it as is.

For each notebook in chapters/: ``nbgrader generate_assignment`` makes the student
version; executing it must not crash (only the check cells fail, each with a
``normlab`` "not implemented yet" message); ``nbgrader autograde`` of the reference
solutions must give full marks.
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9]*.ipynb"))


def grade_cells(nb):
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def nbgrader(course, *args):
    """Run the nbgrader CLI of this interpreter's environment inside ``course``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def course(tmp_path, request):
    """A course directory holding one chapter as assignment 'ch' in source/."""
    chapter = request.param
    (tmp_path / "source" / "ch").mkdir(parents=True)
    shutil.copy(chapter, tmp_path / "source" / "ch" / chapter.name)
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(tmp_path)!r}\n")
    return tmp_path, chapter


@pytest.mark.parametrize("course", CHAPTERS, ids=[c.stem for c in CHAPTERS], indirect=True)
def test_round_trip(course):
    root, chapter = course
    assert grade_cells(nbformat.read(chapter, as_version=4)), f"{chapter.name} has no graded checks"

    nbgrader(root, "generate_assignment", "ch", "--force")
    student = nbformat.read(root / "release" / "ch" / chapter.name, as_version=4)
    assert "### BEGIN SOLUTION" not in nbformat.writes(student), "solution left in student version"
    NotebookClient(student, timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    for cell in student.cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            continue
        assert cell in grade_cells(student), f"non-check cell crashed:\n{cell.source}"
        assert errors[0]["ename"] == "ExerciseError", errors[0]["evalue"]
        assert "not implemented yet" in errors[0]["evalue"]

    submission = root / "submitted" / "reference" / "ch"
    submission.mkdir(parents=True)
    shutil.copy(chapter, submission / chapter.name)
    nbgrader(root, "autograde", "ch", "--force")
    nbgrader(root, "export")
    with open(root / "grades.csv") as f:
        (row,) = csv.DictReader(f)
    assert float(row["score"]) == float(row["max_score"]) > 0, row


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_exercise_cells_follow_the_convention(chapter):
    """Solutions: behind a "Show solution" toggle on the site. Checks: tagged
    ``raises-exception``, so Run All in a student version goes on past a failing check
    (JupyterLab, Notebook 7); nbval still compares their stored "Passed:" output."""
    cells = nbformat.read(chapter, as_version=4).cells
    for i, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            assert "hide-input" in cell.metadata.get("tags", []), i
            assert cell.metadata.get("mystnb", {}).get("code_prompt_show") == "Show solution", i
            assert "### BEGIN SOLUTION" in cell.source, i
        elif meta.get("grade"):
            assert "raises-exception" in cell.metadata.get("tags", []), i
            assert "check." in cell.source and meta.get("locked"), i
