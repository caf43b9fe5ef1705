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
  try {
    const { svg } = await window.mermaid.render("view-" + box.dataset.view, sourceEl.textContent);
    box.innerHTML = svg;
    box.classList.add("drawn");
    if (button) {
      button.disabled = false;
      button.addEventListener("click", () => {
        const drawing = box.querySelector("svg");
        const text = new XMLSerializer().serializeToString(drawing);
        const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
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
