// Keyboard access to regions that scroll sideways: long code blocks and wide tables.
// A keyboard user can scroll only what can take focus (WCAG 2.1.1; axe-core's scrollable-region-focusable),
// so each code block (pre) and furo table wrapper that overflows gets tabindex="0", and loses it again
// when a wider window makes it fit: a block that does not scroll adds no useless tab stop.
"use strict";

(() => {
  const SCROLLERS = "div.highlight pre, div.table-wrapper";

  function update() {
    for (const el of document.querySelectorAll(SCROLLERS)) {
      const scrolls = el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight;
      if (scrolls && !el.hasAttribute("tabindex")) {
        el.setAttribute("tabindex", "0");
        el.dataset.scrollFocus = "";  // marks the tabindex as ours, to take back
      } else if (!scrolls && "scrollFocus" in el.dataset) {
        el.removeAttribute("tabindex");
        delete el.dataset.scrollFocus;
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", update);
  } else {
    update();
  }
  let pending = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(update);
  });
})();
