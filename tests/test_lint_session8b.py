"""Lint corrections from the session-8 audits of the lessons and of Slurm features: --nvccli in a contained
container (HPC225), the runtime module under mpirun (HPC409), and an awk lookup that adds the 1 (HPC508)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

GPU = "#!/bin/bash\n#SBATCH --gres=gpu:1\n"


def codes(text: str, profile: str | None = None) -> list[str]:
    return [f.code for f in lint(text, profile)]


@pytest.mark.parametrize("flags", ["--nvccli --containall", "--nvccli -c", "--contain --nvccli --writable-tmpfs"])
def test_nvccli_contained_without_visible_devices_sees_no_gpu(flags):
    assert "HPC225" in codes(GPU + f"apptainer exec {flags} img.sif python train.py\n")


@pytest.mark.parametrize("script", [
    GPU + "export NVIDIA_VISIBLE_DEVICES=all\napptainer exec --nvccli --containall img.sif python train.py\n",
    GPU + "NVIDIA_VISIBLE_DEVICES=0,1 apptainer exec --nvccli -c img.sif python train.py\n",
    GPU + "apptainer exec --nvccli img.sif python train.py\n",              # not contained: every GPU passed
    GPU + "apptainer exec --nv --containall img.sif python train.py\n",     # --nv binds every device
])
def test_nvccli_is_left_alone_when_the_gpus_are_named_or_not_contained(script):
    assert "HPC225" not in codes(script)


def test_an_exported_empty_or_void_list_still_passes_no_gpu():
    assert "HPC225" in codes(GPU + "export NVIDIA_VISIBLE_DEVICES=void\n"
                                   "apptainer exec --nvccli -C img.sif python train.py\n")


MPI = """#!/bin/bash
#SBATCH --partition=cpu
#SBATCH --nodes=2
mpirun -np 8 --map-by node apptainer exec sim.sif ./simulate
"""


def test_the_runtime_module_is_needed_under_mpirun_too():
    assert "HPC409" in codes(MPI, "generic")
    assert "HPC409" in codes(MPI.replace("mpirun -np 8", "/usr/bin/mpiexec -n 8"), "generic")
    loaded = MPI.replace("mpirun", "module load apptainer\nmpirun")
    assert "HPC409" not in codes(loaded, "generic")
    # an mpirun of a program that is not a container runtime needs no runtime module
    assert "HPC409" not in codes(MPI.replace("apptainer exec sim.sif ", ""), "generic")


ARRAY = "#!/bin/bash\n#SBATCH --array=0-9\n"


@pytest.mark.parametrize("lookup", [
    'LINE=$(awk "NR==$SLURM_ARRAY_TASK_ID+1" runs.csv)',
    "LINE=$(awk \"NR == ${SLURM_ARRAY_TASK_ID} + 1\" runs.csv)",
    "LINE=$(awk -v i=\"$SLURM_ARRAY_TASK_ID\" 'NR==i+1' params.tsv)",
])
def test_an_awk_lookup_that_adds_one_is_right_for_a_zero_based_array(lookup):
    assert "HPC508" not in codes(ARRAY + lookup + "\n")
    assert "HPC508" in codes(ARRAY + lookup.replace("+1", "").replace(" + 1", "") + "\n")


def test_a_bad_value_of_an_option_kept_as_written_is_reported_on_its_own_line():
    script = ("#!/bin/bash\n#SBATCH --job-name=x\n#SBATCH --time=10\n#SBATCH --signal=USR1@60s\n"
              "#SBATCH --gres-flags=enforce_binding\nsrun python t.py\n")
    found = {(f.code, f.line) for f in lint(script)}
    assert ("HPC399", 4) in found and ("HPC399", 5) in found, found


UNDERSCORED = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --ntasks-per-node=1
srun python -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node=2 train.py
"""


def test_findings_on_an_underscored_torchrun_name_its_options_with_underscores():
    found = [f for f in lint(UNDERSCORED) if f.code == "HPC109"]
    assert found and "--nproc_per_node=4" in found[0].message and "--nproc-per-node" not in found[0].message
    # srun's own options keep their dashes, and a hyphenated launch is advised in hyphens
    hyphens = [f for f in lint(UNDERSCORED.replace("nproc_per_node", "nproc-per-node")) if f.code == "HPC109"]
    assert "--nproc-per-node=4" in hyphens[0].message
    fixable = lint(UNDERSCORED.replace("--ntasks-per-node=1", "--ntasks-per-node=4").replace("=2 ", "=4 "))
    oversubscribed = [f for f in fixable if f.code == "HPC101"]
    assert oversubscribed and "--nproc_per_node=4 workers" in oversubscribed[0].message
    assert oversubscribed[0].fix is not None and "--ntasks-per-node=1" in oversubscribed[0].fix.description


def test_a_variable_in_a_count_directive_is_reported_once_with_the_reason():
    found = [(f.code, f.line) for f in lint("#!/bin/bash\n#SBATCH --nodes=$N\n#SBATCH --time=abc\nsrun true\n")]
    assert ("HPC305", 2) in found and ("HPC308", 2) not in found  # not also "'$N' is not a count"
    assert ("HPC301", 3) in found  # another line's own problem stays
