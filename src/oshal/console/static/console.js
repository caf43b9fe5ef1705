// oshal console: small progressive enhancements. Every page works without this file; it adds live ticket
// updates (server-sent events) and draws the architecture views with the vendored Mermaid.
"use strict";

function liveTicket(card) {
  const note = card.querySelector(".live-note");
  const source = new EventSource(card.dataset.live);
  note.textContent = "live";
  source.addEventListener("ticket", (event) => {
    const state = JSON.parse(event.data);
    const pill = card.querySelector('[data-field="status"]');
    pill.textContent = state.status.replaceAll("_", " ");
    pill.className = "pill st-" + state.status;
    for (const field of ["phase", "status_reason", "cost", "calls", "attempts"]) {
      const el = card.querySelector(`[data-field="${field}"]`);
      if (el) el.textContent = state[field] === null || state[field] === undefined ? "—" : String(state[field]);
    }
    for (const el of card.querySelectorAll("[data-shown-at]")) el.hidden = el.dataset.shownAt !== state.status;
    card.dataset.current = state.status;
    if (state.terminal) {
      source.close();
      note.textContent = "finished";
      if (state.status !== card.dataset.status) setTimeout(() => window.location.reload(), 300);
    }
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) note.textContent = "live updates stopped: reload the page";
    else note.textContent = "reconnecting…";
  };
}

// A drawing fitted to the page keeps at least this share of its own size (Mermaid's 16px text stays >= 9.6px);
// a larger one scrolls inside its box instead.
const LEGIBLE_SCALE = 0.6;

// The share of its own size a drawing keeps when fitted into `width` (its viewBox is its own size).
function fitScale(svg, width) {
  const box = /viewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"/.exec(svg);
  return box ? Math.min(1, width / Number(box[1])) : 1;
}

// The views are drawn top down, so parts of one rank sit side by side: a fleet of bots makes a drawing many
// screens wide, shrunk past reading when fitted. Drawn left to right, such a rank stacks instead; whichever
// direction keeps the drawing larger on this page is the one shown.
async function drawLegibly(id, source, width) {
  const down = (await window.mermaid.render(id, source)).svg;
  const across = source.replace(/^flowchart TD$/m, "flowchart LR");
  if (across === source || fitScale(down, width) >= LEGIBLE_SCALE) return down;
  const sideways = (await window.mermaid.render(id + "-lr", across)).svg;
  return fitScale(sideways, width) > fitScale(down, width) ? sideways : down;
}

async function drawDiagram(box) {
  const status = document.querySelector(".diagram-status");
  const button = document.querySelector("[data-download-svg]");
  const sourceEl = box.querySelector(".mermaid-source");
  if (!window.mermaid || !sourceEl) {
    if (status) status.textContent = "The drawing needs JavaScript; the Mermaid source is shown instead.";
    return;
  }
  window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral",
                              flowchart: { htmlLabels: false }, fontFamily: "inherit" });
  const style = getComputedStyle(box);
  const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  try {
    const svg = await drawLegibly("view-" + box.dataset.view, sourceEl.textContent, room);
    box.innerHTML = svg;
    const drawing = box.querySelector("svg");
    const scale = Math.max(fitScale(svg, room), LEGIBLE_SCALE);
    drawing.style.maxWidth = "none";
    drawing.style.width = Math.min(1, scale) * drawing.viewBox.baseVal.width + "px";
    box.classList.add("drawn");
    if (button) {
      button.disabled = false;
      button.addEventListener("click", () => {
        const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
        const link = document.createElement("a");
        link.href = url;
        link.download = button.dataset.downloadSvg;
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      });
    }
    if (status) status.textContent = "";
  } catch (error) {
    if (status) status.textContent = "This view could not be drawn (" + error + "); its Mermaid source is below.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("#ticket[data-live]");
  if (card && window.EventSource) liveTicket(card);
  const box = document.querySelector("#diagram");
  if (box) drawDiagram(box);
});
