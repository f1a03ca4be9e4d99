"""Pure models of every layer of a containerized HPC job (stdlib only, frozen dataclasses)."""

from ._meta import FieldInfo, FieldSpec, Spec, all_kinds, opt, spec_class
from ._words import Verbatim
from .apptainer import (ApptainerBuild, ApptainerInspect, ApptainerInstance, ApptainerPull, ApptainerRun,
                        DefFile)
from .charliecloud import (ChConvert, ChFromhost, ChImageBuild, ChImageImport, ChImagePull, ChRun, Dockerfile,
                           Instruction)
from .common import Bind, EnvVar
from .jupyter import JupyterJob
from .profile import ClusterProfile, ExampleSettings, Module, Partition, check_job
from .slurm import SlurmJob, Srun
from .torchrun import Torchrun
from .units import format_mem, format_time, parse_mem, parse_time
from .workflow import SweepAxis, Workflow

__all__ = [
    "ApptainerBuild", "ApptainerInspect", "ApptainerInstance", "ApptainerPull", "ApptainerRun", "Bind",
    "ChConvert", "ChFromhost", "ChImageBuild", "ChImageImport", "ChImagePull", "ChRun", "ClusterProfile",
    "DefFile", "Dockerfile", "EnvVar", "ExampleSettings", "FieldInfo", "FieldSpec", "Instruction", "JupyterJob",
    "Module", "Partition", "SlurmJob", "Spec", "Srun", "SweepAxis", "Torchrun", "Verbatim", "Workflow", "all_kinds",
    "check_job", "format_mem", "format_time", "opt", "parse_mem", "parse_time", "spec_class",
]
