"""What a person calls each kind of model, for messages: "an srun command", not ``slurm.srun``.

The kinds (``Spec.kind``) are the models' identifiers in JSON and code; a message shown in a form or printed by
the command line names the command or file instead, as the user wrote or will write it.
"""

from __future__ import annotations

from typing import Any

_SPOKEN = {
    "apptainer.run": "an apptainer exec/run/shell command",
    "apptainer.pull": "an apptainer pull command",
    "apptainer.build": "an apptainer build command",
    "apptainer.inspect": "an apptainer inspect command",
    "apptainer.instance": "an apptainer instance start/stop command",
    "apptainer.def": "an Apptainer definition file",
    "charliecloud.build": "a ch-image build command",
    "charliecloud.pull": "a ch-image pull command",
    "charliecloud.import": "a ch-image import command",
    "charliecloud.convert": "a ch-convert command",
    "charliecloud.run": "a ch-run command",
    "charliecloud.fromhost": "a ch-fromhost command",
    "dockerfile": "a Dockerfile",
    "slurm.job": "a Slurm job script",
    "slurm.srun": "an srun command",
    "slurm.comment": "a comment of a job script",
    "slurm.layout": "the layout of a job script read back",
    "torchrun": "a torchrun command",
    "workflow": "a job script",
    "jupyter.job": "a Jupyter job script",
}


def spoken(model: Any) -> str:
    """``model``'s kind (a model, its class, or the kind itself) as a person names it, with its article."""
    kind = model if isinstance(model, str) else getattr(model, "kind", "") or type(model).__name__
    return _SPOKEN.get(kind, f"a {kind} model")


def spoken_list(models: Any) -> str:
    """Several kinds named as one phrase: "an apptainer pull command, an apptainer build command or …"."""
    names = list(dict.fromkeys(spoken(m) for m in models))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
