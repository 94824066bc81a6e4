// Sideways scroll cue (see reader.css): a wide table, display equation or code block
// that scrolls inside its own box gets nl-more-left / nl-more-right while content is
// hidden on that side, and can be scrolled with the keyboard (tabindex 0, named).
"use strict";
(() => {
  const BOXES = [".pst-scrollable-table-container", "div.math mjx-container[display='true']",
                 "div.highlight pre", ".text_html:has(> table.normlab-table)"].join(", ");

  function mark(box) {
    const scrolls = box.scrollWidth > box.clientWidth + 1;
    box.classList.toggle("nl-scrolls", scrolls);
    box.classList.toggle("nl-more-left", scrolls && box.scrollLeft > 1);
    box.classList.toggle("nl-more-right", scrolls && box.scrollLeft + box.clientWidth < box.scrollWidth - 1);
    // The theme also sets tabindex (0 or -1), debounced: it may have judged before layout.
    if (scrolls && box.tabIndex < 0) {
      box.setAttribute("tabindex", "0");
      if (!box.hasAttribute("aria-label") && !box.closest("pre, [aria-label]")) {
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", "wide content, scrolls sideways");
      }
    }
  }

  function watch() {
    const resized = new ResizeObserver((entries) => entries.forEach((e) => mark(e.target)));
    document.querySelectorAll(BOXES).forEach((box) => {
      mark(box);
      box.addEventListener("scroll", () => mark(box), { passive: true });
      resized.observe(box);
    });
  }

  // MathJax typesets a whole page in one task (over 400 ms for a chapter on a slow machine);
  // here it typesets Sphinx's math elements a few at a time, yielding between parts.
  // MathJax.startup.promise still resolves once all of the page is typeset.
  const MATH_PER_TASK = 16;
  if (window.MathJax) {
    MathJax.startup = Object.assign(MathJax.startup || {}, {
      typeset: false,
      async pageReady() {
        await MathJax.startup.defaultPageReady();
        const maths = [...document.querySelectorAll("span.math, div.math")];
        for (let i = 0; i < maths.length; i += MATH_PER_TASK) {
          await MathJax.typesetPromise(maths.slice(i, i + MATH_PER_TASK));
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      },
    });
  }

  // Display equations exist only once MathJax has typeset the page.
  function start() {
    const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
    (typeset || Promise.resolve()).then(watch);
  }
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();
