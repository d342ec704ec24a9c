// The item form: show the fields of the chosen format only. Without JavaScript every field shows.
"use strict";

(() => {
  const select = document.querySelector("[data-format-select]");
  if (!select) {
    return;
  }
  const label = document.querySelector("[data-body-label]");
  const show = () => {
    for (const block of document.querySelectorAll("[data-formats]")) {
      block.hidden = !block.dataset.formats.split(" ").includes(select.value);
    }
    if (label && label.dataset[select.value]) {
      label.textContent = label.dataset[select.value];
    }
  };
  select.addEventListener("change", show);
  show();
})();
