"""Pure models of every layer of a containerized HPC job (stdlib only, frozen dataclasses)."""

from ._meta import FieldInfo, FieldSpec, Spec, all_kinds, opt, spec_class
from ._words import Verbatim
from .apptainer import (ApptainerBuild, ApptainerInspect, ApptainerInstance, ApptainerPull, ApptainerRun,
                        DefFile)
from .common import Bind, EnvVar
from .slurm import SlurmJob, Srun
from .torchrun import Torchrun
from .units import format_mem, format_time, parse_mem, parse_time

__all__ = [
    "ApptainerBuild", "ApptainerInspect", "ApptainerInstance", "ApptainerPull", "ApptainerRun", "Bind",
    "DefFile", "EnvVar", "FieldInfo", "SlurmJob", "Srun", "Torchrun", "format_mem", "format_time", "parse_mem", "parse_time", "FieldSpec", "Spec", "Verbatim", "all_kinds", "opt", "spec_class",
]
