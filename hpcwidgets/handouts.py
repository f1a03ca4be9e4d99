"""Offline HTML handouts from the executed lesson notebooks (``make handouts``).

Each ``notebooks/NN-*.ipynb`` becomes ``handouts/NN-*.html`` (nbconvert's ``lab`` template) with its
pictures embedded and its saved widget state drawn by the widget HTML manager. The two scripts that
draws the widgets need, ``require.js`` and ``@jupyter-widgets/html-manager``'s ``embed-amd.js``, are
installed with npm into ``handouts/vendor/`` and referenced by relative paths, so the handouts open
from ``file://`` or any static web server without reaching the internet:

* no ``<script>``/``<link>`` points at a CDN: nbconvert's defaults are replaced, MathJax is left out
  (the lessons have no formulas), and :func:`build` fails if a remote reference remains;
* the Copy button (an anywidget, whose front-end module would be fetched from a CDN) is saved as a
  plain disabled button: a handout cannot copy to the clipboard anyway.

Command line: ``python -m hpcwidgets.handouts [--notebooks DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from .errors import HpcWidgetsError

#: npm packages installed into ``<out>/vendor`` (html-manager 1.x draws ipywidgets 8 state)
NPM_PACKAGES = ("requirejs@2", "@jupyter-widgets/html-manager@1")
REQUIRE_JS = "vendor/node_modules/requirejs/require.js"
EMBED_AMD_JS = "vendor/node_modules/@jupyter-widgets/html-manager/dist/embed-amd.js"
_LESSON = re.compile(r"^\d\d-.+\.ipynb$")
_REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


class HandoutError(HpcWidgetsError):
    """The handouts could not be built; the message says what to install or change."""


def lessons(notebooks: Path) -> list[Path]:
    """The numbered lesson notebooks in ``notebooks`` (``NN-name.ipynb``), in order."""
    return sorted(p for p in Path(notebooks).iterdir() if _LESSON.match(p.name))


def install_vendor(out: Path, *, npm: str = "npm", timeout: float = 600) -> Path:
    """``npm install`` require.js and the widget HTML manager into ``out/vendor`` unless present."""
    vendor = Path(out) / "vendor"
    if (Path(out) / REQUIRE_JS).is_file() and (Path(out) / EMBED_AMD_JS).is_file():
        return vendor
    exe = shutil.which(npm)
    if exe is None:
        raise HandoutError("npm is not installed: the handouts need it once to fetch require.js and "
                           "@jupyter-widgets/html-manager (apt-get install npm, or install Node.js)")
    vendor.mkdir(parents=True, exist_ok=True)
    argv = [exe, "install", "--no-audit", "--no-fund", "--prefix", str(vendor), *NPM_PACKAGES]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise HandoutError(f"npm could not install {', '.join(NPM_PACKAGES)} (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-600:]}; check that the npm registry is reachable")
    for rel in (REQUIRE_JS, EMBED_AMD_JS):
        if not (Path(out) / rel).is_file():
            raise HandoutError(f"npm finished but {rel} is missing under {out}; the package layout changed: "
                               "update REQUIRE_JS / EMBED_AMD_JS in hpcwidgets/handouts.py")
    return vendor


def _plain_button(state: dict) -> dict:
    """A saved anywidget model rewritten as a disabled ipywidgets Button with the same label."""
    label = state.get("state", {}).get("label") or state.get("state", {}).get("description") or "Copy"
    return {"model_name": "ButtonModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": {"_model_name": "ButtonModel", "_model_module": "@jupyter-widgets/controls",
                      "_model_module_version": "2.0.0", "_view_name": "ButtonView",
                      "_view_module": "@jupyter-widgets/controls", "_view_module_version": "2.0.0",
                      "description": str(label), "disabled": True, "icon": "copy",
                      "tooltip": "Copying works in JupyterLab, not in a handout"}}


def offline_widget_state(nb: Any) -> Any:
    """A copy of the notebook whose saved widget state needs only the standard widget modules."""
    nb = copy.deepcopy(nb)
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME)
    if not saved:
        return nb
    models = saved.get("state", {})
    for key, model in list(models.items()):
        module = model.get("model_module", "")
        if module and not module.startswith("@jupyter-widgets/"):
            models[key] = _plain_button(model)
    return nb


def _rewrite(page: str) -> str:
    """Point the widget scripts at the vendored copies and drop every remaining remote script or link."""
    page = re.sub(r"<script[^>]*\bsrc=[\"'][^\"']*require(?:\.min)?\.js[^\"']*[\"'][^>]*>\s*</script>",
                  f'<script src="{REQUIRE_JS}"></script>', page)
    page = re.sub(r"<script[^>]*\bsrc=[\"'][^\"']*embed-amd\.js[^\"']*[\"'][^>]*>\s*</script>",
                  f'<script src="{EMBED_AMD_JS}" crossorigin="anonymous"></script>', page)
    page = re.sub(r"<script[^>]*\bsrc=[\"'](?:https?:)?//[^\"']*[\"'][^>]*>\s*</script>", "", page)
    page = re.sub(r"<link[^>]*\bhref=[\"'](?:https?:)?//[^\"']*[\"'][^>]*/?>", "", page)
    return page


def convert(notebook: Path, out: Path) -> Path:
    """One executed notebook → ``out/<name>.html`` that works offline."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = offline_widget_state(nbformat.read(notebook, as_version=4))
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    exporter.require_js_url = REQUIRE_JS
    exporter.widget_renderer_url = EMBED_AMD_JS
    exporter.mathjax_url = ""
    page, _ = exporter.from_notebook_node(nb, resources={"metadata": {"path": str(notebook.parent)}})
    page = _rewrite(page)
    remote = _REMOTE.search(page)
    if remote:
        raise HandoutError(f"{notebook.name}: the HTML still loads something from the internet "
                           f"({remote.group(0)[:80]}…); extend _rewrite in hpcwidgets/handouts.py")
    target = Path(out) / (notebook.stem + ".html")
    target.write_text(page, encoding="utf-8")
    return target


def _index(pages: Iterable[Path], out: Path) -> Path:
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in pages)
    text = ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>hpcwidgets lessons</title></head>\n"
            f"<body><h1>hpcwidgets lessons (handouts)</h1>\n<ol>\n{items}\n</ol></body></html>\n")
    target = Path(out) / "index.html"
    target.write_text(text, encoding="utf-8")
    return target


def build(notebooks: str | Path = "notebooks", out: str | Path = "handouts", *, names: Iterable[str] = ()) -> list[Path]:
    """Convert the lessons (or only ``names``, e.g. ``["02-apptainer-basics"]``) and write an index."""
    src, dst = Path(notebooks), Path(out)
    if not src.is_dir():
        raise HandoutError(f"no notebooks folder at {src}; run from the repository root or pass --notebooks")
    chosen = lessons(src)
    wanted = set(names)
    if wanted:
        chosen = [p for p in chosen if p.stem in wanted]
        missing = wanted - {p.stem for p in chosen}
        if missing:
            raise HandoutError(f"no lesson called {', '.join(sorted(missing))} in {src}")
    if not chosen:
        raise HandoutError(f"no lesson notebooks (NN-name.ipynb) in {src}")
    dst.mkdir(parents=True, exist_ok=True)
    install_vendor(dst)
    pages = [convert(p, dst) for p in chosen]
    _index(pages, dst)
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpcwidgets.handouts",
                                     description="Executed lesson notebooks → offline HTML handouts.")
    parser.add_argument("--notebooks", default="notebooks", help="folder with the executed lessons (default notebooks)")
    parser.add_argument("--out", default="handouts", help="output folder (default handouts)")
    parser.add_argument("names", nargs="*", help="only these lessons (file names without .ipynb)")
    args = parser.parse_args(argv)
    try:
        pages = build(args.notebooks, args.out, names=args.names)
    except HpcWidgetsError as exc:
        print(f"handouts: error: {exc}", file=sys.stderr)
        return 1
    for p in pages:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
