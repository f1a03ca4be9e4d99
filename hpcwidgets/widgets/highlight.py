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
    return f'<pre class="hpcw-code" aria-label="preview">{body}</pre>'


def escape(text: str) -> str:
    return html.escape(str(text), quote=True)
