"""Preview text → HTML with syntax highlighting that follows the JupyterLab theme.

Pygments marks tokens with short CSS classes; :data:`CSS` colours them with JupyterLab's own
editor variables (``--jp-mirror-editor-*``), so light, dark and high-contrast themes all apply.
No colour is written here.
"""

from __future__ import annotations

import functools
import html

#: every rule is scoped under .hpcw-builder so nothing leaks into the rest of the page
CSS = """
.hpcw-builder { --hpcw-gap: 4px; --hpcw-error: var(--jp-error-color1); }
/* dark themes: error-color1 (red 500) is below contrast 4.5 on their panels; the lighter red 300 is not */
body[data-jp-theme-light="false"] .hpcw-builder { --hpcw-error: var(--jp-error-color2); }
.hpcw-builder .hpcw-preview pre { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
  line-height: var(--jp-code-line-height); color: var(--jp-content-font-color1);
  background: var(--jp-cell-editor-background); border: var(--jp-border-width) solid var(--jp-cell-editor-border-color);
  padding: 6px 8px; margin: 0; overflow-x: auto; white-space: pre; }
.hpcw-builder .hpcw-preview .k, .hpcw-builder .hpcw-preview .kn, .hpcw-builder .hpcw-preview .kd
  { color: var(--jp-mirror-editor-keyword-color); font-weight: bold; }
.hpcw-builder .hpcw-preview .nb { color: var(--jp-mirror-editor-builtin-color); }
.hpcw-builder .hpcw-preview .s, .hpcw-builder .hpcw-preview .s1, .hpcw-builder .hpcw-preview .s2,
.hpcw-builder .hpcw-preview .sh, .hpcw-builder .hpcw-preview .se, .hpcw-builder .hpcw-preview .sb
  { color: var(--jp-mirror-editor-string-color); }
.hpcw-builder .hpcw-preview .c, .hpcw-builder .hpcw-preview .c1, .hpcw-builder .hpcw-preview .ch,
.hpcw-builder .hpcw-preview .cm { color: var(--jp-mirror-editor-comment-color); font-style: italic; }
.hpcw-builder .hpcw-preview .nv, .hpcw-builder .hpcw-preview .si
  { color: var(--jp-mirror-editor-variable-2-color); }
.hpcw-builder .hpcw-preview .m, .hpcw-builder .hpcw-preview .mi { color: var(--jp-mirror-editor-number-color); }
.hpcw-builder .hpcw-preview .o, .hpcw-builder .hpcw-preview .p { color: var(--jp-mirror-editor-operator-color); }
.hpcw-builder .hpcw-preview .nt, .hpcw-builder .hpcw-preview .na { color: var(--jp-mirror-editor-attribute-color); }
.hpcw-builder .hpcw-stale { color: var(--jp-warn-color1); font-size: var(--jp-ui-font-size1); }
.hpcw-builder .hpcw-help { color: var(--jp-ui-font-color2); font-size: var(--jp-ui-font-size0);
  margin: 0 0 var(--hpcw-gap) 0; line-height: 1.3; }
.hpcw-builder .hpcw-help p { margin: 0; }
.hpcw-builder .hpcw-invalid input, .hpcw-builder .hpcw-invalid textarea, .hpcw-builder .hpcw-invalid select
  { border-color: var(--jp-error-color1) !important; outline: 1px solid var(--jp-error-color1); }
.hpcw-builder .hpcw-invalid .widget-label, .hpcw-builder .hpcw-invalid label { color: var(--hpcw-error); }
.hpcw-builder .hpcw-finding { font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1); }
.hpcw-builder .hpcw-sev-error { color: var(--hpcw-error); font-weight: bold; }
.hpcw-builder .hpcw-sev-warning { color: var(--jp-warn-color1); font-weight: bold; }
.hpcw-builder .hpcw-sev-info { color: var(--jp-info-color1); font-weight: bold; }
.hpcw-builder .hpcw-status { font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1); }
.hpcw-builder .hpcw-status-error { color: var(--hpcw-error); }
.hpcw-builder .hpcw-ok { color: var(--jp-success-color1); }
/* findings and status: their own line height, not the 28 px of a control's row that ipywidgets' HTML has (a finding
   beside an Apply fix button had its lines spread apart) */
.hpcw-builder .hpcw-finding, .hpcw-builder .hpcw-status, .hpcw-builder .hpcw-stale { line-height: 1.4; }
/* a field's own error message, under it */
.hpcw-builder .hpcw-field-error { color: var(--hpcw-error); font-size: var(--jp-ui-font-size0); line-height: 1.3;
  margin: 0 0 2px 0; }
/* Advanced, Load or reset: a button that opens its part (keyboard: Tab to it, Enter or Space) */
.hpcw-builder .hpcw-disclosure { margin: var(--hpcw-gap) 0; }
.hpcw-builder .hpcw-disclosure-toggle { text-align: left; font-weight: bold; }
.hpcw-builder .hpcw-disclosure-body { box-sizing: border-box; padding-left: 6px;
  border-left: 2px solid var(--jp-border-color2); }
.hpcw-builder .hpcw-disclosure-toggle:focus-visible, .hpcw-builder .hpcw-preview pre:focus-visible,
.hpcw-builder .hpcw-job pre:focus-visible { outline: 2px solid var(--jp-brand-color1); outline-offset: 1px; }
/* the preview keeps to its column and scrolls sideways (ipywidgets' HTML content does not shrink: a long line made
   it wider than the column, and the output area cut it off) */
.hpcw-builder .hpcw-preview { box-sizing: border-box; max-width: calc(100% - 2 * var(--jp-widgets-margin)); }
.hpcw-builder .hpcw-preview > .widget-html-content { flex: 1 1 auto; min-width: 0; max-width: 100%; }
.hpcw-builder .hpcw-preview pre { box-sizing: border-box; max-width: 100%; }
/* tab titles wrap onto a second row rather than being cut ("Job step (sru") */
.hpcw-builder .jupyter-widgets.jupyter-widget-tab > .lm-TabBar > .lm-TabBar-content { flex-wrap: wrap; }
.hpcw-builder .jupyter-widgets.jupyter-widget-tab > .lm-TabBar .lm-TabBar-tab { flex: 0 0 auto; max-width: 100%; }
/* a field's control fits its row, margins included (a full-width box stuck out past the tab panel's border) */
.hpcw-builder .hpcw-field > .jupyter-widgets { box-sizing: border-box;
  max-width: calc(100% - 2 * var(--jp-widgets-margin)); }
/* a narrow form (800 px with JupyterLab's side bar open): each label above its box, so boxes get the whole width
   and their text and placeholders are not cut */
.hpcw-builder { container-type: inline-size; }
@container (max-width: 560px) {
  .hpcw-builder .hpcw-field > .widget-inline-hbox { flex-wrap: wrap; width: auto !important; height: auto; }
  .hpcw-builder .hpcw-field > .widget-inline-hbox > .widget-label { width: 100% !important; max-width: none;
    text-align: left; }
  .hpcw-builder .hpcw-field > .widget-inline-hbox > input, .hpcw-builder .hpcw-field > .widget-inline-hbox > textarea,
  .hpcw-builder .hpcw-field > .widget-inline-hbox > select { flex: 1 1 auto; min-width: 0;
    min-height: var(--jp-widgets-inline-height); }
}
.hpcw-builder .hpcw-job pre { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
  background: var(--jp-layout-color2); color: var(--jp-content-font-color1); max-height: 16em; overflow: auto; margin: 0; }
"""

SEVERITY_ICONS = {"error": "✖", "warning": "⚠", "info": "ℹ"}


@functools.lru_cache(maxsize=1)
def _tools():
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import BashLexer, TextLexer
    return BashLexer(), TextLexer(), HtmlFormatter(nowrap=True)


@functools.lru_cache(maxsize=256)
def highlight(text: str, language: str = "bash") -> str:
    """``<pre>`` HTML for ``text`` with Pygments token classes (cached: previews repeat)."""
    from pygments import highlight as run
    bash, plain, formatter = _tools()
    body = run(text, bash if language == "bash" else plain, formatter)
    # focusable (tabindex), so a keyboard can scroll a long line sideways (its arrow keys are not JupyterLab's
    # shortcuts there: data-lm-suppress-shortcuts); a named region says what it is
    return (f'<pre class="hpcw-code" tabindex="0" role="region" aria-label="preview" '
            f'data-lm-suppress-shortcuts="true">{body}</pre>')


def escape(text: str) -> str:
    return html.escape(str(text), quote=True)
