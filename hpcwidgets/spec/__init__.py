"""Pure models of every layer of a containerized HPC job (stdlib only, frozen dataclasses)."""

from ._meta import FieldInfo, FieldSpec, Spec, all_kinds, opt, spec_class
from ._words import Verbatim
from .apptainer import (ApptainerBuild, ApptainerInspect, ApptainerInstance, ApptainerPull, ApptainerRun,
                        DefFile)
from .common import Bind, EnvVar

__all__ = [
    "ApptainerBuild", "ApptainerInspect", "ApptainerInstance", "ApptainerPull", "ApptainerRun", "Bind",
    "DefFile", "EnvVar", "FieldInfo", "FieldSpec", "Spec", "Verbatim", "all_kinds", "opt", "spec_class",
]
