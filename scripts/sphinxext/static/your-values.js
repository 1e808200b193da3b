// The reader's own values in the guide's code blocks (scripts/sphinxext/values.py builds the data).
//
// The build says, for each block, where its text holds one of the guide's example values: [start, end,
// variable, form], form being the whole value ("value") or the hostname of a URL value ("host"). Those
// spans come from the model the tests use (scripts/snippets.py value_spans), so this script decides
// nothing about which strings are values: it replaces exactly the spans, after checking that each
// still holds its example, and leaves a block alone where one does not. The copy buttons read the
// block's text when clicked, so they copy what the reader sees. The values stay in localStorage.
"use strict";

(() => {
  const KEY = "reflector-docs:your-values";
  const dataElement = document.getElementById("your-values-data");
  if (!dataElement) return;
  const data = JSON.parse(dataElement.textContent);
  const examples = new Map(data.values.map((v) => [v.name, v]));
  const blocks = [...document.querySelectorAll(".your-values-block pre")];
  const originals = blocks.map((pre) => pre.innerHTML);

  // The hostname of a URL value, as scripts/snippets.py PageValue.host reads it.
  const hostOf = (url) => {
    const m = /^https?:\/\/([^/:]+)(:\d+)?\/?$/.exec(url);
    return m ? m[1] : null;
  };
  const HOST = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/i;
  const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

  // Only known variables with text values: anything else in storage (an older page, a hand edit) is ignored.
  const stored = () => {
    let raw;
    try {
      raw = JSON.parse(localStorage.getItem(KEY) || "{}");
    } catch {
      return {};
    }
    const mine = {};
    for (const [name, value] of Object.entries(raw && typeof raw === "object" ? raw : {})) {
      if (examples.has(name) && typeof value === "string" && value) mine[name] = value;
    }
    return mine;
  };

  const exampleOf = (name, form) => (form === "host" ? examples.get(name).host : examples.get(name).example);
  const replacementOf = (name, form, mine) => (name in mine ? (form === "host" ? hostOf(mine[name]) : mine[name]) : null);

  // Replace the spans in `text`: returns the new text, or null when a span does not hold its example.
  const substituteText = (text, spans, mine) => {
    let out = text;
    for (const [start, end, name, form] of [...spans].sort((a, b) => b[0] - a[0])) {
      const replacement = replacementOf(name, form, mine);
      if (replacement === null) continue;
      if (text.slice(start, end) !== exampleOf(name, form)) return null;
      out = out.slice(0, start) + replacement + out.slice(end);
    }
    return out;
  };

  // Replace the spans inside a highlighted <pre>, whose text is split over the highlighter's token
  // elements: each replacement goes where its span starts, marked as the reader's; the rest of the
  // span is cut from the text nodes it reaches into. Right to left, so earlier offsets stay valid.
  const substituteBlock = (pre, spans, mine) => {
    const text = pre.textContent;
    const wanted = spans.filter(([, , name, form]) => replacementOf(name, form, mine) !== null);
    if (wanted.some(([start, end, name, form]) => text.slice(start, end) !== exampleOf(name, form))) return false;
    const nodes = [];
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(), at = 0; node; at += node.data.length, node = walker.nextNode()) nodes.push([node, at]);
    for (const [start, end, name, form] of [...wanted].sort((a, b) => b[0] - a[0])) {
      const touched = nodes.filter(([node, at]) => at < end && at + node.data.length > start);
      for (const [node, at] of touched.slice(1).reverse()) node.deleteData(0, Math.min(end, at + node.data.length) - at);
      const [first, at] = touched[0];
      const cut = Math.min(end, at + first.data.length) - start;
      const span = first.splitText(start - at);
      span.splitText(cut);
      const mark = document.createElement("span");
      mark.className = "your-value";
      mark.textContent = replacementOf(name, form, mine);
      span.replaceWith(mark);
    }
    return true;
  };

  const apply = (mine) => {
    let skipped = 0;
    blocks.forEach((pre, i) => {
      pre.innerHTML = originals[i];
      if (Object.keys(mine).length && !substituteBlock(pre, data.blocks[i], mine)) skipped += 1;
    });
    // For the browser test: a block whose text no longer matches the build's spans is left as it is, and counted.
    dataElement.dataset.skipped = String(skipped);
    dataElement.dataset.applied = JSON.stringify(mine);
    const inUse = Object.keys(mine).length > 0;
    for (const note of document.querySelectorAll(".your-values-note")) note.hidden = !inUse;
  };

  // The page's script, downloaded with the reader's values in it (its spans come with the link).
  for (const link of document.querySelectorAll("a[download][data-your-values]")) {
    link.addEventListener("click", async (event) => {
      const mine = stored();
      if (!Object.keys(mine).length) return;
      event.preventDefault();
      const original = await (await fetch(link.href)).text();
      const text = substituteText(original, JSON.parse(link.dataset.yourValues), mine);
      if (text === null) {
        window.location.href = link.href;  // the script changed since the build: the examples, unchanged
        return;
      }
      const url = URL.createObjectURL(new Blob([text], { type: "text/x-shellscript" }));
      const save = document.createElement("a");
      save.href = url;
      save.download = link.getAttribute("href").split("/").pop();
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 0);
    });
  }

  const form = document.getElementById("your-values");
  if (form) {
    const status = form.querySelector(".your-values-status");
    const inputs = [...form.querySelectorAll("input[name]")];
    const fill = (mine) => {
      for (const input of inputs) {
        const value = mine[input.name];
        input.value = value === undefined ? "" : examples.get(input.name).host !== null ? hostOf(value) || "" : value;
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const mine = {};
      for (const input of inputs) {
        input.setCustomValidity("");
        const example = examples.get(input.name);
        let value = input.value.trim();
        if (!value) continue;
        if (example.host !== null) {
          value = value.replace(/^https?:\/\//i, "").replace(/\/$/, "").toLowerCase();
          if (!HOST.test(value)) input.setCustomValidity(`A hostname like ${example.host}, without https:// or a path`);
          else mine[input.name] = example.example.replace(example.host, value);
        } else if (example.example.includes("@")) {
          if (!EMAIL.test(value)) input.setCustomValidity(`An email address like ${example.example}`);
          else mine[input.name] = value;
        } else {
          mine[input.name] = value;
        }
      }
      const invalid = inputs.find((input) => !input.checkValidity());
      if (invalid) {
        invalid.reportValidity();
        status.textContent = `Not changed: ${invalid.validationMessage}`;
        return;
      }
      localStorage.setItem(KEY, JSON.stringify(mine));
      apply(mine);
      status.textContent = Object.keys(mine).length
        ? "The blocks of this guide now show your values."
        : "No values given: the blocks show the examples.";
    });
    form.querySelector(".your-values-reset").addEventListener("click", () => {
      localStorage.removeItem(KEY);
      fill({});
      for (const input of inputs) input.setCustomValidity("");
      apply({});
      status.textContent = "The blocks show the examples again.";
    });
    fill(stored());
    form.hidden = false;
  }
  apply(stored());
})();
