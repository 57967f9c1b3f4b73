// A unit the build skipped: ask the server how its render goes (the step reached of all its
// images' steps) and show the page when it is done. Asking keeps its place in the server's
// waiting line; a unit the server does not know (it restarted) is asked for again.
"use strict";

function describe(state) {
  if (state.status === "queued") return state.ahead ? `queued, ${state.ahead} ahead of it` : "queued";
  if (state.status === "waiting") {
    return `the render queue is full (${state.limit} units): waiting for a place, ${state.ahead} ahead of it`;
  }
  if (state.status === "not built") return "asking the server to render it";
  if (state.status !== "rendering") return state.status;
  if (!state.steps) return "rendering: loading the model and the dataset examples";
  if (state.step >= state.steps) return `rendering: step ${state.step} of ${state.steps}, measuring and writing the unit`;
  return `rendering: step ${state.step} of ${state.steps}`;
}

async function poll() {
  const status = document.getElementById("status");
  const bar = document.querySelector(".progress div");
  const url = document.body.dataset.api;
  const started = Date.now();
  for (;;) {
    let state;
    try {
      state = await (await fetch(url, { cache: "no-store" })).json();
      if (state.status === "not built") {
        state = await (await fetch(url, { method: "POST", cache: "no-store" })).json();
      }
    } catch (err) {
      status.textContent = "the server does not answer; retrying";
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    if (state.status === "done") { location.reload(); return; }
    if (state.status === "failed") { status.textContent = `the render failed: ${state.error}`; return; }
    const seconds = Math.round((Date.now() - started) / 1000);
    status.textContent = `${describe(state)} (${seconds} s)`;
    bar.style.width = `${100 * Math.min(1, state.progress || 0)}%`;
    await new Promise((r) => setTimeout(r, 500));
  }
}
document.addEventListener("DOMContentLoaded", poll);
