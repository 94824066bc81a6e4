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
    if (scrolls && !box.hasAttribute("tabindex")) {
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

  // Display equations exist only once MathJax has typeset the page.
  function start() {
    const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
    (typeset || Promise.resolve()).then(watch);
  }
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();
