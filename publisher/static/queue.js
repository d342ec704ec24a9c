// Keeps the queue health page current: fetches its figures every few seconds and swaps them in.
"use strict";

(() => {
  const box = document.getElementById("queue-health");
  if (!box) {
    return;
  }
  const INTERVAL_MS = 3000;

  const loop = async () => {
    let response;
    try {
      response = await fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (_error) {
      window.setTimeout(loop, INTERVAL_MS); // the network hiccuped: try again on the next round
      return;
    }
    // A redirect means the session ended (the login page): stop rather than show it here.
    if (!response.ok || response.redirected) {
      const note = document.createElement("p");
      note.className = "flash error";
      note.setAttribute("role", "status");
      note.textContent = box.dataset.stopped;
      box.prepend(note);
      return;
    }
    box.innerHTML = await response.text();
    window.setTimeout(loop, INTERVAL_MS);
  };

  window.setTimeout(loop, INTERVAL_MS);
})();
