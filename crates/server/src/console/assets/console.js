// Keyward console: the one script the pages load (the Content-Security-Policy allows no
// other, and no inline script). Pages work without it; it only adds the copy buttons.
"use strict";

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

async function copyFrom(button) {
  const source = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copied");
  if (!source) return;
  const text = source.textContent.trim();
  try {
    // Only on https or localhost; elsewhere the text is selected for Ctrl+C.
    await navigator.clipboard.writeText(text);
    if (status) status.textContent = "Copied to the clipboard.";
  } catch {
    selectText(source);
    if (status) status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (button) copyFrom(button);
});
