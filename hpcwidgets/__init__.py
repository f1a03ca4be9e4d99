"""hpcwidgets: build, check and run correct container + Slurm + torchrun jobs.

``import hpcwidgets`` is light: models load on first use, and nothing of the notebook stack,
Jinja2 or torch is imported until something needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first attribute access)
_EXPORTS = {
    "HpcWidgetsError": "hpcwidgets.errors",
    "ValidationError": "hpcwidgets.errors",
    "ParseError": "hpcwidgets.errors",
    "ProfileError": "hpcwidgets.errors",
    "OverwriteError": "hpcwidgets.errors",
    "RunError": "hpcwidgets.errors",
    "Problem": "hpcwidgets.errors",
    "Bind": "hpcwidgets.spec",
    "EnvVar": "hpcwidgets.spec",
    "Verbatim": "hpcwidgets.spec",
    "ApptainerRun": "hpcwidgets.spec",
    "ApptainerPull": "hpcwidgets.spec",
    "ApptainerBuild": "hpcwidgets.spec",
    "ApptainerInspect": "hpcwidgets.spec",
    "ApptainerInstance": "hpcwidgets.spec",
    "DefFile": "hpcwidgets.spec",
    "SlurmJob": "hpcwidgets.spec",
    "Srun": "hpcwidgets.spec",
    "Torchrun": "hpcwidgets.spec",
    "Workflow": "hpcwidgets.spec",
    "JupyterJob": "hpcwidgets.spec",
    "ClusterProfile": "hpcwidgets.spec",
    "ChRun": "hpcwidgets.spec",
    "ChImageBuild": "hpcwidgets.spec",
    "ChConvert": "hpcwidgets.spec",
    "ChFromhost": "hpcwidgets.spec",
    "Dockerfile": "hpcwidgets.spec",
    "render": "hpcwidgets.render",
    "parse_script": "hpcwidgets.parse",
    "parse_command": "hpcwidgets.parse",
    "read_script": "hpcwidgets.parse",
    "lint": "hpcwidgets.lint",
    "Finding": "hpcwidgets.lint",
    "rules": "hpcwidgets.lint",
    "fix_script": "hpcwidgets.fixes",
    "load_profile": "hpcwidgets.profiles",
    "list_profiles": "hpcwidgets.profiles",
    "examples": "hpcwidgets.examples",
    "ApptainerBuilder": "hpcwidgets.widgets",
    "DefFileBuilder": "hpcwidgets.widgets",
    "CharliecloudBuilder": "hpcwidgets.widgets",
    "SlurmBuilder": "hpcwidgets.widgets",
    "TorchrunBuilder": "hpcwidgets.widgets",
    "JupyterJobBuilder": "hpcwidgets.widgets",
    "WorkflowBuilder": "hpcwidgets.widgets",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hpcwidgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
