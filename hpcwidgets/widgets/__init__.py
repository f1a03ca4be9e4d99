"""Form-driven builders for JupyterLab (ipywidgets 8).

    from hpcwidgets.widgets import WorkflowBuilder
    WorkflowBuilder(profile="mysite")           # the cell's last expression displays it; no profile= checks
                                                # the job as `hpcwidgets lint` does, without a site's limits

Each builder generates its form from the models' field metadata, shows a live preview (the
renderer's text, highlighted) and the findings (model problems, profile limits, the linter),
and offers Copy, Save, Load, Reset and, where Slurm answers, Submit with a job panel.

ipywidgets is imported on first use of a builder, not by ``import hpcwidgets.widgets``; the pure
model ↔ form layer is :mod:`hpcwidgets.widgets.state`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Builder": "hpcwidgets.widgets.builder",
    "ApptainerBuilder": "hpcwidgets.widgets.builder",
    "DefFileBuilder": "hpcwidgets.widgets.builder",
    "CharliecloudBuilder": "hpcwidgets.widgets.builder",
    "SlurmBuilder": "hpcwidgets.widgets.builder",
    "TorchrunBuilder": "hpcwidgets.widgets.builder",
    "JupyterJobBuilder": "hpcwidgets.widgets.builder",
    "WorkflowBuilder": "hpcwidgets.widgets.builder",
    "BUILDERS": "hpcwidgets.widgets.builder",
    "CopyButton": "hpcwidgets.widgets.clipboard",
    "JobPanel": "hpcwidgets.widgets.jobs",
    "Form": "hpcwidgets.widgets.state",
    "Section": "hpcwidgets.widgets.state",
    "FormFinding": "hpcwidgets.widgets.state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hpcwidgets.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
