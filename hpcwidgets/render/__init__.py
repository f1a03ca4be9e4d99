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
    :class:`~hpcwidgets.errors.ValidationError` listing all of them. Anything but a model (a dict, text, None) is an
    :class:`~hpcwidgets.errors.HpcWidgetsError` saying how to get a model from it."""
    try:
        kind = model.kind
        if validate:
            model.validate()
    except AttributeError:
        # found out here rather than checked first: render is on every keystroke's path and must stay lean
        from ..spec._meta import Spec
        if not isinstance(model, Spec):
            raise _not_a_model(model) from None
        raise
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


def _not_a_model(value: Any) -> Exception:
    from ..errors import HpcWidgetsError
    if isinstance(value, dict):
        kind = value.get("kind")
        build = ("Workflow.from_dict(data)" if kind in (None, "workflow") or not isinstance(kind, str)
                 else f"spec_class({kind!r}).from_dict(data) (from hpcwidgets.spec import spec_class)")
        fix = f"build the model from it first: render({build})"
    elif isinstance(value, str):
        fix = "to read a job script into one, use parse_script(text); a command line, parse_command(text)"
    else:
        fix = "build one (Workflow(...), SlurmJob(...)), or load one with Workflow.from_json(text)"
    shown = "None" if value is None else f"a {type(value).__name__}"
    return HpcWidgetsError(f"render() takes a model (Workflow, SlurmJob, Torchrun, …), got {shown}; {fix}")



from .._callable import make_callable as _make_callable  # noqa: E402

_make_callable(__name__, "render")
