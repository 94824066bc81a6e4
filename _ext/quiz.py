"""A ``quiz`` directive: self-check questions that work on the static site with no kernel.

Multiple choice (one bullet per choice, ``[x]`` marks the right one, ``::`` starts
its feedback) or numeric (``:answer:`` and a relative ``:tolerance:``). The HTML is a
plain list that ``_static/quiz.js`` turns into radio buttons and a Check button.
"""

import re

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

CHOICE = re.compile(r"^- \[( |x)\] (.+?)(?: :: (.+))?$")


class Quiz(SphinxDirective):
    has_content = True
    option_spec = {
        "answer": float,
        "tolerance": float,
        "explanation": directives.unchanged,
    }

    def run(self):
        stray = [line for line in self.content
                 if re.match(rf"^:({'|'.join(self.option_spec)}):", line)]
        if stray:  # options are only read before the question; later they would show as text
            raise self.error(f"quiz option after the question text: {stray[0]!r} "
                             "(put every :option: line before the question)")
        question, choices = self._split(self.content)
        quiz = nodes.container(classes=["nl-quiz"])
        self.set_source_info(quiz)
        quiz["ids"].append(f"quiz-{self.env.new_serialno('nl-quiz')}")
        self.state.nested_parse(question, self.content_offset, quiz)
        if choices:
            quiz["classes"].append("nl-choice")
            quiz += self._choice_list(choices)
        elif "answer" in self.options:
            quiz["classes"].append("nl-numeric")
            answer, tol = self.options["answer"], self.options.get("tolerance", 1e-6)
            quiz += nodes.raw("", f'<input type="number" step="any" class="nl-answer" '
                                  f'aria-label="Your answer" data-answer="{answer!r}" '
                                  f'data-tolerance="{tol!r}">', format="html")
        else:
            raise self.error("quiz needs choices ('- [x] …') or an :answer: option")
        if "explanation" in self.options:
            quiz += self._feedback(self.options["explanation"])
        return [quiz]

    @staticmethod
    def _split(content):
        """Question lines up to the first choice; the choices as (correct, text, feedback)."""
        lines = list(content)
        first = next((i for i, line in enumerate(lines) if CHOICE.match(line)), len(lines))
        choices = [CHOICE.match(line).groups() for line in lines[first:] if CHOICE.match(line)]
        return content[:first], [(mark == "x", text, fb or "") for mark, text, fb in choices]

    def _choice_list(self, choices):
        if sum(correct for correct, _, _ in choices) != 1:
            raise self.error("a multiple-choice quiz needs exactly one [x] choice")
        items = nodes.bullet_list(classes=["nl-choices"])
        for correct, text, feedback in choices:
            item = nodes.list_item(classes=["nl-correct" if correct else "nl-wrong"])
            item += nodes.paragraph("", "", *self.state.inline_text(text, self.lineno)[0])
            item += self._feedback(feedback)
            items += item
        return items

    def _feedback(self, text):
        return nodes.paragraph("", "", *self.state.inline_text(text, self.lineno)[0],
                               classes=["nl-feedback"])


def setup(app):
    app.add_directive("quiz", Quiz)
    app.add_js_file("quiz.js")
    app.add_css_file("quiz.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
