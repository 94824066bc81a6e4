"""The instructor guide's nbgrader commands work as written.

The guide's "Grading with nbgrader" section has three bash blocks: the environment (``make
book``; ``source .venv/bin/activate``), making the course and the student version, and
grading. This test runs the activation line and the other two blocks verbatim with a
temporary ``$HOME`` (so the course directory, ``$HOME/normlab-course``, is outside the
repository), with one correct and one empty submission in between, and checks the grades
and the feedback pages.
"""

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "instructor_guide.md"


def nbgrader_blocks():
    """The bash blocks of the guide's nbgrader section, in order."""
    text = GUIDE.read_text()
    section = text.split("(instructor-nbgrader)=")[1].split("\n## ")[1]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def run(script, home, course):
    """Run ``script`` with bash (stop at the first failing command) in the repository root."""
    env = dict(os.environ, HOME=str(home), COURSE=str(course))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"


def test_guide_commands_run_as_written(tmp_path):
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("no .venv: run `make book` first (the guide's first step)")
    environment, generate, grade = nbgrader_blocks()
    commands = [line.split("#")[0].strip() for line in environment.splitlines()]
    assert commands == ["make book", "source .venv/bin/activate"]
    course = tmp_path / "normlab-course"
    run(f"source .venv/bin/activate\n{generate}", tmp_path, course)

    student = course / "release" / "ch02" / "02_layernorm.ipynb"
    assert "### BEGIN SOLUTION" not in student.read_text()
    for name, notebook in (("alice", ROOT / "chapters" / "02_layernorm.ipynb"), ("bob", student)):
        (course / "submitted" / name / "ch02").mkdir(parents=True)
        shutil.copy(notebook, course / "submitted" / name / "ch02" / "02_layernorm.ipynb")
    run(f"source .venv/bin/activate\n{grade}", tmp_path, course)

    with open(course / "grades.csv") as f:
        scores = {row["student_id"]: row for row in csv.DictReader(f)}
    assert float(scores["alice"]["score"]) == float(scores["alice"]["max_score"]) > 0
    assert float(scores["bob"]["score"]) == 0
    bob = (course / "feedback" / "bob" / "ch02" / "02_layernorm.html").read_text()
    assert "is not implemented yet" in bob
    assert (course / "feedback" / "alice" / "ch02" / "02_layernorm.html").exists()
