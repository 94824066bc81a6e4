"""Exercises read in order, and no listing above an exercise gives its answer away.

Order: in page order, a chapter's exercise headings (``### Exercise N`` or
``**Exercise N — …**``) are numbered 1, 2, 3, …; each exercise's solution and check cells
(``grade_id`` ``chNN-exK-solution``, then ``chNN-exK-check``) follow its heading, with ``K = N``
and ``NN`` the chapter's number; a checker whose docstring starts with "Exercise K" is called
under heading ``K``.

Giveaways:
For every exercise solution cell (nbgrader ``solution``), the code between the
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers is compared, token by token (names and
operators; numbers as one token), with every ``nb.show_source`` listing stored above it.
A listing "contains the solution" when runs of at least ``MIN_RUN`` tokens in common cover
``MAX_SHARE`` or more of the solution's tokens (chapter 2's ``layer_norm_backward`` listing
above the ``dx`` exercise covered 76 %; unrelated pairs stay below 45 %).
"""

import difflib
import importlib
import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9]*.ipynb"))
MIN_RUN, MAX_SHARE = 4, 0.5


HEADING = re.compile(r"^(?:#+ |\*\*)Exercise (\d+)", re.M)
GRADE_ID = re.compile(r"ch(\d\d)-ex(\d+)-(solution|check)")
CHECK_MODULE = re.compile(r"(?:import normlab\.checks\.(\w+) as check|"
                          r"from normlab\.checks import (\w+) as check)")


def exercise_sequence(notebook):
    """Page order of exercise headings ``("heading", N)``, graded cells ``(kind, chapter, K)``
    and checkers' own numbers ``("checker", K)`` (from a docstring "Exercise K: …")."""
    seq, module = [], None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            seq += [("heading", int(n)) for n in HEADING.findall(cell.source)]
            continue
        if cell.cell_type != "code":
            continue
        found = CHECK_MODULE.search(cell.source)
        if found:
            module = importlib.import_module(f"normlab.checks.{found[1] or found[2]}")
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            chapter, k, kind = GRADE_ID.fullmatch(grade_id).groups()
            seq.append((kind, chapter, int(k)))
            called = re.search(r"check\.(\w+)\(", cell.source)
            doc = getattr(getattr(module, called[1], None), "__doc__", "") if called else ""
            numbered = re.match(r"\s*Exercise (\d+)", doc or "")
            if numbered:
                seq.append(("checker", int(numbered[1])))
    return seq


def order_problems(seq, chapter):
    """What is out of order in ``seq`` (see :func:`exercise_sequence`), as readable lines."""
    problems, current = [], 0
    expect = "heading"
    for item in seq:
        if item[0] == "heading":
            if item[1] != current + 1:
                problems.append(f"heading 'Exercise {item[1]}' follows exercise {current}")
            if expect != "heading":
                problems.append(f"exercise {current} has no {expect} cell before the next heading")
            current, expect = item[1], "solution"
        elif item[0] == "checker":
            if item[1] != current:
                problems.append(f"the checker of exercise {current} says 'Exercise {item[1]}'")
        else:
            kind, ch, k = item
            if ch != chapter or k != current or kind != expect:
                problems.append(f"ch{ch}-ex{k}-{kind} where ch{chapter}-ex{current}-{expect} "
                                f"was expected")
            expect = "check" if kind == "solution" else "heading"
    if expect != "heading":
        problems.append(f"exercise {current} has no {expect} cell")
    return problems


def tokens(code):
    """Names and operators of ``code``; every number becomes ``0``; strings are dropped."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in (tokenize.NAME, tokenize.OP):
                out.append(tok.string)
            elif tok.type == tokenize.NUMBER:
                out.append("0")
    except (tokenize.TokenError, IndentationError):
        pass
    return out


def listing_code(cell):
    """The python code blocks of a ``show_source`` cell's stored markdown output."""
    text = "".join(o.get("data", {}).get("text/markdown", "") for o in cell.outputs)
    return "\n".join(re.findall(r"```+python\n(.*?)\n```+", text, re.S))


def share(solution, listing):
    """Fraction of ``solution``'s tokens found in runs of ``MIN_RUN``+ tokens of ``listing``."""
    blocks = difflib.SequenceMatcher(None, solution, listing, autojunk=False)
    common = sum(b.size for b in blocks.get_matching_blocks() if b.size >= MIN_RUN)
    return common / max(1, len(solution))


def giveaways(notebook):
    """``(grade_id, share, listing call)`` for each solution with a revealing listing above."""
    found, listings = [], []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if "show_source(" in cell.source:
            listings.append((cell.source.strip(), tokens(listing_code(cell))))
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            body = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            solution = tokens(body)
            for source, listing in listings:
                if share(solution, listing) >= MAX_SHARE:
                    found.append((meta["grade_id"], round(share(solution, listing), 2), source))
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_exercises_are_numbered_in_page_order(chapter):
    seq = exercise_sequence(nbformat.read(chapter, as_version=4))
    assert order_problems(seq, chapter.name[:2]) == []


def test_the_order_check_sees_a_swap():
    seq = [("heading", 1), ("solution", "08", 1), ("check", "08", 1), ("checker", 1),
           ("heading", 3), ("solution", "08", 3), ("check", "08", 3), ("checker", 3),
           ("heading", 2), ("solution", "08", 2), ("check", "08", 2), ("checker", 2)]
    assert order_problems(seq, "08") == ["heading 'Exercise 3' follows exercise 1",
                                         "heading 'Exercise 2' follows exercise 3"]
    assert order_problems([("heading", 1), ("check", "08", 1), ("checker", 2)], "08") == [
        "ch08-ex1-check where ch08-ex1-solution was expected",
        "the checker of exercise 1 says 'Exercise 2'"]
    assert order_problems([("heading", 1), ("solution", "07", 1)], "08") == [
        "ch07-ex1-solution where ch08-ex1-solution was expected", "exercise 1 has no check cell"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_no_listing_above_an_exercise_contains_its_solution(chapter):
    assert giveaways(nbformat.read(chapter, as_version=4)) == []


def test_the_detector_sees_the_chapter_2_case():
    solution = tokens("g = dy * weight\nreturn rstd * (g - g.mean(-1, keepdim=True)\n"
                      "    - x_hat * (g * x_hat).mean(-1, keepdim=True))")
    listing = tokens("dx = rstd * (g - g.mean(dim=dims, keepdim=True)\n"
                     "    - x_hat * (g * x_hat).mean(dim=dims, keepdim=True))")
    assert share(solution, listing) >= MAX_SHARE
