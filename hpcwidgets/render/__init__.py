"""Model → text. :func:`render` is the one entry point for any model.

Commands render as one shell command (with continuation lines when long); jobs, workflows and the
Jupyter job as complete sbatch scripts; definition files and Dockerfiles as their file text.
"""

from __future__ import annotations

import importlib
from typing import Any

#: model kind -> (module, function) for models that are not a single command line
_RENDERERS = {
    "slurm.job": ("hpcwidgets.render.script", "render_job"),
    "workflow": ("hpcwidgets.render.workflow", "render_workflow"),
    "jupyter.job": ("hpcwidgets.render.jupyter", "render_jupyter_job"),
    "apptainer.def": ("hpcwidgets.render.dockerfile", "render_deffile"),
    "dockerfile": ("hpcwidgets.render.dockerfile", "render_dockerfile"),
}


def render(model: Any, *, validate: bool = True) -> str:
    """The text of any model; with ``validate`` (the default) a model with problems raises
    :class:`~hpcwidgets.errors.ValidationError` listing all of them."""
    if validate:
        model.validate()
    kind = getattr(model, "kind", "")
    fn = _LOADED.get(kind)
    if fn is None:
        target = _RENDERERS.get(kind)
        if target:
            module, name = target
            fn = _LOADED[kind] = getattr(importlib.import_module(module), name)
    if fn is not None:
        return fn(model)  # type: ignore[no-any-return]
    from .command import command_line
    return command_line(model) + "\n"


_LOADED: dict[str, Any] = {}



from .._callable import make_callable as _make_callable  # noqa: E402

_make_callable(__name__, "render")
