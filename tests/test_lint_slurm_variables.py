"""HPC521: a Slurm variable that sbatch sets only for an option the job does not ask for ($SLURM_CPUS_PER_TASK
without --cpus-per-task): it expands to nothing, and under set -u the script stops. What sbatch sets was checked on
the practice cluster (Slurm 22.05): without --cpus-per-task there is no SLURM_CPUS_PER_TASK, with --gres=gpu:1 no
SLURM_GPUS_PER_NODE, and a site's DefMemPerCPU sets SLURM_MEM_PER_CPU for every job (so memory is left out)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --ntasks=1\n"


def found(text: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=["HPC521"])]


@pytest.mark.parametrize("line, name", [
    ("export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK", "SLURM_CPUS_PER_TASK"),
    ("srun python train.py --workers ${SLURM_CPUS_PER_TASK}", "SLURM_CPUS_PER_TASK"),
    ('srun bash -c "python train.py --tasks $SLURM_NTASKS_PER_NODE"', "SLURM_NTASKS_PER_NODE"),
    ("torchrun --standalone --nproc-per-node=$SLURM_GPUS_ON_NODE train.py", "SLURM_GPUS_ON_NODE"),
    ("python train.py --gpus $SLURM_GPUS_PER_TASK", "SLURM_GPUS_PER_TASK"),
])
def test_a_variable_the_job_does_not_get_is_reported_once_at_its_first_use(line, name):
    text = HEAD + line + "\n" + line + "\n"
    hits = found(text)
    assert [n for n, _ in hits] == [3]
    assert hits[0][1].startswith(f"${name} is set only when the job asks for") and "unbound variable" in hits[0][1]


@pytest.mark.parametrize("text", [
    HEAD + "#SBATCH --cpus-per-task=8\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n",   # asked for
    HEAD + "#SBATCH -c 8\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n",                # short form
    HEAD + "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n",                           # a default
    HEAD + 'if [ -n "$SLURM_CPUS_PER_TASK" ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n',  # tested
    HEAD + 'if [ "$SLURM_CPUS_PER_TASK" != "" ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n',
    HEAD + 'if [[ $SLURM_CPUS_PER_TASK ]]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n',
    HEAD + 'if test "x$SLURM_CPUS_PER_TASK" = x; then n=1; else n=$SLURM_CPUS_PER_TASK; fi\n',
    HEAD + 'export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:?ask for --cpus-per-task}\n',  # stops with its own message
    HEAD + "SLURM_CPUS_PER_TASK=4\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n",      # set by the script
    HEAD + 'echo "cpus: $SLURM_CPUS_PER_TASK"\n',                                           # only printed
    HEAD + "srun -c 4 bash -c 'python t.py --workers $SLURM_CPUS_PER_TASK'\n",             # the step's own value
    HEAD + "#SBATCH --gres=gpu:2\ntorchrun --standalone --nproc-per-node=$SLURM_GPUS_ON_NODE t.py\n",
    HEAD + "#SBATCH --tres-per-task=cpu:4\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n",
    # no resource in the script: they come from the command line (sbatch -N 4 -c 8 ray.sh)
    "#!/bin/bash\n#SBATCH --job-name=ray\n#SBATCH --output=ray-%j.out\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n",
    # arrays are often asked for when submitting (sbatch --array=0-9 job.sh)
    HEAD + "python train.py --task $SLURM_ARRAY_TASK_ID\n",
    # a heterogeneous job: the model holds only its first component
    HEAD + "#SBATCH hetjob\n#SBATCH --ntasks=1 --cpus-per-task=4\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n",
])
def test_uses_that_are_fine_are_left_alone(text):
    assert found(text) == []
