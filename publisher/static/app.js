// Small behaviours shared by every page. The pages work without JavaScript; this only helps.
"use strict";

// <form data-confirm="question">: ask before submitting.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// <form data-busy="Sending…">: a form that waits on a remote service shows it is working and
// cannot be sent twice.
document.addEventListener("submit", (event) => {
  const busy = event.target.dataset && event.target.dataset.busy;
  const button = busy && !event.defaultPrevented && event.target.querySelector("button[type=submit]");
  if (button) {
    button.disabled = true;
    button.textContent = busy;
  }
});

// Typing a date into a field marked data-select-when="at" selects the matching "when" choice.
document.addEventListener("input", (event) => {
  const value = event.target.dataset && event.target.dataset.selectWhen;
  if (!value || !event.target.form) {
    return;
  }
  const choice = event.target.form.querySelector(`input[name="when"][value="${value}"]`);
  if (choice) {
    choice.checked = true;
  }
});
