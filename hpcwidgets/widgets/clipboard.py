"""A Copy button: an anywidget whose front-end module writes ``text`` to the clipboard.

The module is inline (no CDN, works offline). ``navigator.clipboard`` needs a secure context
(https or localhost); elsewhere the button falls back to selecting a hidden textarea and
``document.execCommand("copy")``. The result comes back in ``status`` ("copied" or why not).
"""

from __future__ import annotations

import anywidget
import traitlets

_ESM = r"""
function fallbackCopy(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
  document.body.removeChild(area);
  return ok;
}

function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-widgets jupyter-button widget-button hpcw-copy";
  button.type = "button";
  const label = () => model.get("description") || "Copy";
  button.textContent = label();
  button.title = model.get("tooltip") || "Copy the preview to the clipboard";
  button.setAttribute("aria-label", button.title);
  button.addEventListener("click", async () => {
    const text = model.get("text");
    let status;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        status = "copied";
      } else {
        status = fallbackCopy(text) ? "copied" : "the browser refused to copy; select the preview and press Ctrl+C";
      }
    } catch (err) {
      status = fallbackCopy(text) ? "copied" : "the browser refused to copy (" + err + "); select the preview and press Ctrl+C";
    }
    model.set("status", status);
    model.set("copies", model.get("copies") + 1);
    model.save_changes();
    button.textContent = status === "copied" ? "Copied" : label();
    setTimeout(() => { button.textContent = label(); }, 1500);
  });
  model.on("change:description", () => { button.textContent = label(); });
  el.appendChild(button);
}
export default { render };
"""


class CopyButton(anywidget.AnyWidget):
    """A button copying ``text`` to the browser's clipboard."""

    _esm = _ESM
    text = traitlets.Unicode("").tag(sync=True)
    description = traitlets.Unicode("Copy").tag(sync=True)
    tooltip = traitlets.Unicode("Copy the preview to the clipboard").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    copies = traitlets.Int(0).tag(sync=True)
