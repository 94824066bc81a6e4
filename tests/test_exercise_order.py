"""No listing above an exercise gives its answer away.

For every exercise solution cell (nbgrader ``solution``), the code between the
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers is compared, token by token (names and
operators; numbers as one token), with every ``nb.show_source`` listing stored above it.
A listing "contains the solution" when runs of at least ``MIN_RUN`` tokens in common cover
``MAX_SHARE`` or more of the solution's tokens (chapter 2's ``layer_norm_backward`` listing
above the ``dx`` exercise covered 76 %; unrelated pairs stay below 45 %).
"""

import difflib
import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9]*.ipynb"))
MIN_RUN, MAX_SHARE = 4, 0.5


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
def test_no_listing_above_an_exercise_contains_its_solution(chapter):
    assert giveaways(nbformat.read(chapter, as_version=4)) == []


def test_the_detector_sees_the_chapter_2_case():
    solution = tokens("g = dy * weight\nreturn rstd * (g - g.mean(-1, keepdim=True)\n"
                      "    - x_hat * (g * x_hat).mean(-1, keepdim=True))")
    listing = tokens("dx = rstd * (g - g.mean(dim=dims, keepdim=True)\n"
                     "    - x_hat * (g * x_hat).mean(dim=dims, keepdim=True))")
    assert share(solution, listing) >= MAX_SHARE
