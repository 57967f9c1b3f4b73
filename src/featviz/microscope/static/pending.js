// A unit the build skipped: ask the server how its render goes and show the page when it is done.
"use strict";

async function poll() {
  const status = document.getElementById("status");
  const bar = document.querySelector(".progress div");
  const url = document.body.dataset.api;
  const started = Date.now();
  for (;;) {
    let state;
    try {
      state = await (await fetch(url, { cache: "no-store" })).json();
    } catch (err) {
      status.textContent = "the server does not answer; retrying";
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    if (state.status === "done") { location.reload(); return; }
    if (state.status === "failed") { status.textContent = `the render failed: ${state.error}`; return; }
    const ahead = state.ahead ? `, ${state.ahead} ahead of it in the queue` : "";
    const seconds = Math.round((Date.now() - started) / 1000);
    status.textContent = `${state.status}${ahead} (${seconds} s)`;
    bar.style.width = `${Math.min(95, 100 * (state.progress || 0))}%`;
    await new Promise((r) => setTimeout(r, 700));
  }
}
document.addEventListener("DOMContentLoaded", poll);
