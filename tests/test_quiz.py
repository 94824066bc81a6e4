"""The ``quiz`` directive (_ext/quiz.py), built by Sphinx on a one-page project."""

import subprocess
import sys
from pathlib import Path

EXT = Path(__file__).resolve().parents[1] / "_ext"
# reStructuredText, which (unlike MyST) needs a blank line between options and content.
NUMERIC = """
.. quiz::
   :answer: 2048
   :tolerance: 0.01
{options}

   How many parameters?
{after}
"""


def build(tmp_path, body):
    """``(ok, html or error output)`` of ``index.rst`` = ``body`` built with the quiz
    extension by ``sphinx-build -W`` (warnings are errors, as in the book's build)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(EXT)!r})\n"
                                 "extensions = ['quiz']\n")
    (src / "index.rst").write_text(body)
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    if done.returncode:
        return False, done.stderr
    return True, (tmp_path / "out" / "index.html").read_text()


def test_numeric_quiz_with_explanation(tmp_path):
    ok, html = build(tmp_path, NUMERIC.format(options="   :explanation: 2 · 1024 = 2048", after=""))
    assert ok, html
    assert 'data-answer="2048.0"' in html and 'class="nl-feedback"' in html
    assert "How many parameters?" in html and ":explanation:" not in html


def test_option_after_the_question_fails_the_build(tmp_path):
    ok, out = build(tmp_path, NUMERIC.format(options="", after="   :explanation: 2 · 1024 = 2048"))
    assert not ok and "quiz option after the question text" in out, out
