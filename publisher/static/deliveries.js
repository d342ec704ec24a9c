// Keeps the deliveries table of an item page current: fetches the table every second and swaps
// it in, until every delivery is final (sent, failed, unconfirmed or cancelled).
"use strict";

(() => {
  const box = document.getElementById("deliveries");
  if (!box) {
    return;
  }
  const INTERVAL_MS = 1000;

  const isFinal = () => {
    const table = box.querySelector("[data-final]");
    return !table || table.dataset.final === "true";
  };

  const stop = () => {
    const note = document.createElement("p");
    note.className = "flash error";
    note.setAttribute("role", "status");
    note.textContent = box.dataset.stopped;
    box.prepend(note);
  };

  const refresh = async () => {
    let response;
    try {
      response = await fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (_error) {
      return true; // the network hiccuped: try again on the next round
    }
    // A redirect means the session ended (the login page): stop rather than show it in the table.
    if (!response.ok || response.redirected) {
      stop();
      return false;
    }
    const html = await response.text();
    // Keep open history panels open across the swap.
    const open = Array.from(box.querySelectorAll("details[open]"), (el) => el.id);
    box.innerHTML = html;
    open.forEach((id) => {
      const el = document.getElementById(id);
      if (el) {
        el.open = true;
      }
    });
    return !isFinal();
  };

  const loop = async () => {
    if (await refresh()) {
      window.setTimeout(loop, INTERVAL_MS);
    }
  };

  if (!isFinal()) {
    window.setTimeout(loop, INTERVAL_MS);
  }
})();
