// Conveniences only: every page works without this script.
"use strict";

// The agents table narrows down as you type (the search form still works without it).
function filterAgents() {
  const input = document.querySelector("#search input[name=q]");
  const rows = document.querySelectorAll("#agents tr[data-agent-key]");
  if (!input || !rows.length) return;
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    for (const row of rows) {
      row.hidden = needle !== "" && !row.dataset.search.includes(needle);
    }
  });
}

// A block's usage bar and character count follow the text being typed.
function liveUsage() {
  for (const form of document.querySelectorAll("form.block")) {
    const area = form.querySelector("textarea[name=value]");
    const meter = form.querySelector("meter");
    const used = form.querySelector(".chars .used");
    if (!area || !meter) continue;
    const limit = Number(area.dataset.limit);
    area.addEventListener("input", () => {
      const length = area.value.replace(/\r\n/g, "\n").length;
      meter.value = length;
      if (used) used.textContent = length.toLocaleString("en-US");
      area.classList.toggle("over", length > limit);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  filterAgents();
  liveUsage();
});
