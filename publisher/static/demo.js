// The demo receiver page: fetch the list of received posts every second and swap it in,
// so a post shows up the moment it arrives without reloading the page.
(function () {
  "use strict";
  var box = document.getElementById("demo-received");
  var status = document.getElementById("demo-status");
  if (!box) return;
  var busy = false;
  var timer = null;
  var last = null;

  function refresh() {
    if (busy) return;  // a slow answer must not pile up requests
    busy = true;
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (resp) {
        if (resp.redirected || resp.status === 401) {
          status.textContent = box.dataset.loggedOut;
          clearInterval(timer);
          return null;
        }
        if (!resp.ok) throw new Error(String(resp.status));
        return resp.text();
      })
      .then(function (html) {
        if (html === null) return;
        status.textContent = "";
        if (html !== last) {  // an unchanged list keeps the reader's text selection
          box.innerHTML = html;
          last = html;
        }
      })
      .catch(function () { status.textContent = box.dataset.offline; })
      .then(function () { busy = false; });
  }

  timer = setInterval(refresh, 1000);
})();
