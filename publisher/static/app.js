// Small behaviours shared by every page. The pages work without JavaScript; this only helps.
"use strict";

// <form data-confirm="question">: ask before submitting.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
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
