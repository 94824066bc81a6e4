// Self-check quizzes (see _ext/quiz.py): radio choices or a number, checked in the page.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".nl-quiz").forEach((quiz, n) => {
    const result = document.createElement("p");
    result.className = "nl-result";
    result.setAttribute("aria-live", "polite");
    result.setAttribute("role", "status");
    // The question labels the group of choices (or the answer box).
    const question = quiz.querySelector(":scope > p");
    if (question) {
      question.id = `nl-quiz-${n}-question`;
      quiz.setAttribute("role", "group");
      quiz.setAttribute("aria-labelledby", question.id);
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "nl-check";
    button.textContent = "Check";
    if (quiz.classList.contains("nl-choice")) {
      quiz.querySelectorAll(".nl-choices > li").forEach((item, i) => {
        const input = document.createElement("input");
        input.type = "radio";
        input.name = `nl-quiz-${n}`;
        input.id = `nl-quiz-${n}-${i}`;
        const label = document.createElement("label");
        label.htmlFor = input.id;
        // Name from the text before MathJax typesets it (its output has no text for axe).
        const text = item.querySelector("p").textContent.replace(/\\[()[\]]/g, "").trim();
        input.setAttribute("aria-label", text);
        label.append(...item.querySelector("p").childNodes);
        item.querySelector("p").replaceWith(input, label);
      });
    }
    button.addEventListener("click", () => check(quiz, result));
    // Enter in the answer box checks, as it would submit a form.
    const box = quiz.querySelector(".nl-answer");
    if (box) box.addEventListener("keydown", (e) => { if (e.key === "Enter") check(quiz, result); });
    quiz.append(button, result);
  });
});

function check(quiz, result) {
  quiz.querySelectorAll(".nl-feedback").forEach((el) => el.classList.remove("nl-shown"));
  result.classList.remove("nl-right", "nl-wrong-answer");
  let correct, feedback, miss = "";
  if (quiz.classList.contains("nl-choice")) {
    const chosen = quiz.querySelector("input[type=radio]:checked");
    if (!chosen) { result.textContent = "Pick an answer first."; return; }
    const item = chosen.closest("li");
    correct = item.classList.contains("nl-correct");
    feedback = item.querySelector(".nl-feedback");
  } else {
    const input = quiz.querySelector(".nl-answer");
    const value = parseFloat(input.value);
    const answer = parseFloat(input.dataset.answer);
    if (Number.isNaN(value)) { result.textContent = "Type a number first."; return; }
    const tolerance = parseFloat(input.dataset.tolerance);
    correct = Math.abs(value - answer) <= tolerance * Math.abs(answer);
    // Say which way the number is off, never the answer itself.
    if (!correct) miss = `${value} is too ${value > answer ? "high" : "low"};`;
  }
  result.textContent = correct ? "Correct!" : ["Not quite —", miss, "try again."].filter(Boolean).join(" ");
  result.classList.toggle("nl-right", correct);
  result.classList.toggle("nl-wrong-answer", !correct);
  if (feedback) {
    feedback.classList.add("nl-shown");
    feedback.setAttribute("aria-live", "polite");
  }
  const explanation = quiz.querySelector(":scope > .nl-feedback");
  if (explanation && (correct || !quiz.classList.contains("nl-numeric"))) explanation.classList.add("nl-shown");
}
