"""Findings of the session-15 audit of real job scripts (a false alarm, three misses, and wrong advice).

Each case follows what Slurm, bash and the container runtimes do:

- ``--signal`` without ``B:`` reaches every step, so a step started through ``eval``, in a function or loop, behind
  ``time``/``exec``, in ``bash -c`` or through a variable is a step (HPC517 must not say the job starts none);
- a batch job gets SLURM_MEM_PER_CPU when its memory is asked for per CPU and SLURM_MEM_PER_NODE only for a
  per-node amount (Slurm's ``env_array_for_batch_job``), so ``$SLURM_MEM_PER_NODE`` in a ``--mem-per-cpu`` job is
  empty (HPC521);
- ``--cleanenv``/``--containall`` pass none of the host's variables, so the CUDA, PyTorch and NCCL settings a
  script exports for the program are lost too (HPC227), and SingularityCE reads SINGULARITYENV_, never
  APPTAINERENV_ (HPC227/HPC209 advice);
- srun starts a step in component 0 of a heterogeneous job unless ``--het-group`` or its ``:`` form names
  another (Slurm's heterogeneous jobs page), so a component nothing starts in sits idle (HPC534).
"""

from __future__ import annotations

import dataclasses

import pytest

from hpcwidgets.lint import explain_rule, lint
from hpcwidgets.profiles import load_profile


def found(text: str, code: str, profile=None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


# --------------------------------------------------------------------------------------------
# FP1, HPC517: a step started where the rule did not look

SIGNAL = """#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
#SBATCH --signal=USR1@60
"""

#: the Mila auto-requeue test (trimmed): the step is started by eval of a variable holding srun
MILA_AUTOREQUEUE = """#!/bin/bash
#SBATCH --job-name=test_slurm_autorequeue
#SBATCH --open-mode=append
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:rtx8000:2
#SBATCH --time=00:5:00
#SBATCH --mem=48Gb
#SBATCH --cpus-per-task=8
#SBATCH --signal=SIGUSR1@60 # for pytorch-lightning auto-requeue

home_dir="/home/mila/m/mirceara"
script_path="${home_dir}/lightning-transformer-pretraining/ltp/hf_mlm/run.py"
args="--strategy=ddp --slurm_auto_requeue"
source ${home_dir}/.bashrc
module load anaconda/3 && activate ltp
cmd="srun python $script_path $args"
echo $cmd
eval $cmd
"""


@pytest.mark.parametrize("body", [
    'eval "srun python train.py"\n',
    'cmd="srun python train.py"\neval $cmd\n',
    'if [ -f train.py ]; then srun python train.py; fi\n',
    'run() { srun python train.py; }\nrun\n',
    'for seed in 1 2; do srun python train.py --seed "$seed"; done\n',
    'time srun python train.py\n',
    'exec srun python train.py\n',
    'bash -c "srun python train.py"\n',
    'LAUNCH="srun --ntasks=1"\n$LAUNCH python train.py\n',
    'eval "$CMD"\n',
    'bash run_train.sh\n',
    'source run_experiment.sh\n',
], ids=["eval-literal", "eval-variable", "if", "function", "loop", "time", "exec", "bash-c", "held-in-variable",
        "eval-unknown", "other-script", "sourced-script"])
def test_signal_is_not_said_to_reach_no_step_when_one_may_start(body: str) -> None:
    assert not found(SIGNAL + body, "HPC517")


def test_real_eval_of_srun_is_a_step() -> None:
    assert not found(MILA_AUTOREQUEUE, "HPC517")


@pytest.mark.parametrize("body", [
    'python train.py\n',
    'eval "$(conda shell.bash hook)"\nconda activate ml\npython train.py\n',
    'source ~/miniconda3/bin/activate ml\npython train.py\n',
    'cmd="python train.py"\neval $cmd\n',
], ids=["plain", "conda-hook", "sourced-activate", "eval-without-srun"])
def test_signal_with_no_step_is_still_reported(body: str) -> None:
    (finding,) = found(SIGNAL + body, "HPC517")
    assert "this job starts none" in finding.message


def test_tasks_started_through_eval_are_not_said_never_to_start() -> None:
    text = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
python preprocess.py
cmd="srun python train.py"
eval $cmd
"""
    assert not found(text, "HPC528")
    assert found(text.replace('cmd="srun python train.py"', 'cmd="echo done"'), "HPC528")


# --------------------------------------------------------------------------------------------
# M1, HPC521: the memory variable of another memory option

#: the parallel_gvcf array (trimmed): Java's heap from the per-node memory of a --mem-per-cpu job
GVCF_ARRAY = """#! /usr/bin/env bash
#SBATCH --job-name=parallel_gvcf
#SBATCH --ntasks=1
#SBATCH --cpus-per-task 14
#SBATCH --mem-per-cpu=8G
#SBATCH --time=300
#SBATCH --array=1-50%100
ACC=$(sed -n "${SLURM_ARRAY_TASK_ID}p" configfile.txt)
javamem=$((SLURM_MEM_PER_NODE-2000))
module load gatk
export JAVA_TOOL_OPTIONS="-Xmx${javamem}m"
gatk HaplotypeCaller -ERC GVCF -I "MappedReads/${ACC}_sorted-md.bam" -O "GVCFs/${ACC}.g.vcf.gz"
"""

MEMORY = """#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=14
{memory}
{use}
"""


def test_per_node_memory_in_a_per_cpu_job_is_reported_at_its_use() -> None:
    (finding,) = found(GVCF_ARRAY, "HPC521")
    assert finding.line == 9
    assert "$SLURM_MEM_PER_NODE is set only when the job asks for --mem" in finding.message
    assert "--mem-per-cpu (line 5)" in finding.message and "$SLURM_MEM_PER_CPU" in finding.message


@pytest.mark.parametrize("memory, use, name", [
    ("#SBATCH --mem-per-cpu=8G", "javamem=$(( $SLURM_MEM_PER_NODE - 2000 ))", "SLURM_MEM_PER_NODE"),
    ("#SBATCH --mem-per-cpu=8G", 'java "-Xmx${SLURM_MEM_PER_NODE}m" -jar tool.jar', "SLURM_MEM_PER_NODE"),
    ("#SBATCH --gres=gpu:1\n#SBATCH --mem-per-gpu=32G", "heap=$((SLURM_MEM_PER_NODE / 2))", "SLURM_MEM_PER_NODE"),
    ("#SBATCH --mem=64G", "threads_mem=$((SLURM_MEM_PER_CPU * 2))", "SLURM_MEM_PER_CPU"),
], ids=["dollar-arith", "braces", "per-gpu", "per-cpu-in-mem-job"])
def test_memory_variable_of_another_option_is_reported(memory: str, use: str, name: str) -> None:
    (finding,) = found(MEMORY.format(memory=memory, use=use), "HPC521")
    assert finding.message.startswith(f"${name} is set only when")


@pytest.mark.parametrize("memory, use", [
    ("", "javamem=$((SLURM_MEM_PER_NODE-2000))"),              # no memory option: the site's default decides
    ("#SBATCH --mem=64G", "javamem=$((SLURM_MEM_PER_NODE-2000))"),
    ("#SBATCH --mem-per-cpu=8G", "javamem=$((SLURM_MEM_PER_CPU * SLURM_CPUS_PER_TASK - 2000))"),
    ("#SBATCH --mem-per-cpu=8G", 'javamem=$(( ${SLURM_MEM_PER_NODE:-16000} - 2000 ))'),
    ("#SBATCH --mem-per-cpu=8G", 'echo "memory: $SLURM_MEM_PER_NODE"'),
], ids=["no-memory-option", "own-option", "own-variable", "default", "printed"])
def test_memory_variable_that_may_be_set_is_left_alone(memory: str, use: str) -> None:
    assert not found(MEMORY.format(memory=memory, use=use), "HPC521")


def test_explanation_names_the_memory_variables_the_rule_checks() -> None:
    text = explain_rule("HPC521")
    assert "SLURM_MEM_PER_NODE with --mem, SLURM_MEM_PER_CPU with --mem-per-cpu" in text
    assert "DefMemPerCPU" in text


# --------------------------------------------------------------------------------------------
# M2 and W1, HPC227 and HPC209: what --cleanenv drops, and the prefix that passes it on

#: the TGen dorado job (trimmed): CUDA_MODULE_LOADING exported for a --cleanenv --contain step
DORADO = """#!/bin/bash
#SBATCH --job-name=dorado
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
#SBATCH --time=1-00:00:00
export CUDA_MODULE_LOADING=LAZY
export SINGULARITYENV_CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES}
IMG=/packages/containers/dorado/dorado_0.5.1.sif
singularity exec --bind /scratch --cleanenv --contain --nv $IMG dorado duplex sup pod5/ > duplex.bam
"""

CLEAN = """#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
{exports}
{runtime} exec --cleanenv --nv img.sif python train.py
"""


def test_cuda_settings_exported_for_a_clean_singularity_step_are_reported() -> None:
    (finding,) = found(DORADO, "HPC227")
    assert "CUDA_MODULE_LOADING (line 6) never reaches it" in finding.message
    assert 'export SINGULARITYENV_CUDA_MODULE_LOADING="$CUDA_MODULE_LOADING"' in finding.message


def test_program_variable_families_are_all_reported() -> None:
    exports = "\n".join(f"export {name}=1" for name in (
        "CUDA_MODULE_LOADING", "NCCL_DEBUG", "PYTORCH_CUDA_ALLOC_CONF", "TORCH_NCCL_ASYNC_ERROR_HANDLING",
        "TF_CPP_MIN_LOG_LEVEL", "XLA_PYTHON_CLIENT_MEM_FRACTION", "OMP_PROC_BIND", "TRANSFORMERS_OFFLINE",
        "HF_HUB_OFFLINE", "WANDB_MODE"))
    (finding,) = found(CLEAN.format(exports=exports, runtime="apptainer"), "HPC227")
    for name in ("CUDA_MODULE_LOADING", "NCCL_DEBUG", "PYTORCH_CUDA_ALLOC_CONF", "TORCH_NCCL_ASYNC_ERROR_HANDLING",
                 "TF_CPP_MIN_LOG_LEVEL", "XLA_PYTHON_CLIENT_MEM_FRACTION", "OMP_PROC_BIND", "TRANSFORMERS_OFFLINE",
                 "HF_HUB_OFFLINE", "WANDB_MODE"):
        assert f"{name} (line" in finding.message


@pytest.mark.parametrize("exports", [
    "export CUDA_HOME=/usr/local/cuda-12.2\nexport CUDA_PATH=$CUDA_HOME",  # the host's toolkit, for host builds
    "export PATH=$HOME/bin:$PATH\nexport LD_LIBRARY_PATH=/opt/lib\nexport PYTHONPATH=$PWD/src",
    "export CUDA_MODULE_LOADING=LAZY\nexport SINGULARITYENV_CUDA_MODULE_LOADING=LAZY",
    "export NCCL_DEBUG=INFO\nexport APPTAINERENV_NCCL_DEBUG=INFO",
], ids=["cuda-home", "host-paths", "singularityenv", "apptainerenv"])
def test_variables_that_reach_the_program_or_are_for_the_host_are_left_alone(exports: str) -> None:
    assert not found(CLEAN.format(exports=exports, runtime="singularity"), "HPC227")


def test_program_variables_reach_a_step_that_keeps_the_environment() -> None:
    text = CLEAN.format(exports="export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True", runtime="singularity")
    assert found(text, "HPC227")
    assert not found(text.replace("--cleanenv ", ""), "HPC227")


def test_advice_names_the_prefix_the_runtime_reads() -> None:
    exports = "export NCCL_DEBUG=INFO"
    singularity = CLEAN.format(exports=exports, runtime="singularity")
    apptainer = CLEAN.format(exports=exports, runtime="apptainer")
    singularityce_site = dataclasses.replace(load_profile("generic"), runtimes=("singularity",),
                                             apptainer_binary="singularity")
    cases = [(singularity, None, "SINGULARITYENV_"), (singularity, singularityce_site, "SINGULARITYENV_"),
             (singularity, load_profile("generic"), "APPTAINERENV_"), (apptainer, None, "APPTAINERENV_")]
    for text, profile, prefix in cases:
        (lost,) = found(text, "HPC227", profile)
        (usersite,) = found(text, "HPC209", profile)
        assert f"export {prefix}NCCL_DEBUG=" in lost.message
        assert f"export {prefix}PYTHONNOUSERSITE=1" in usersite.message
        other = "APPTAINERENV_" if prefix == "SINGULARITYENV_" else "SINGULARITYENV_"
        assert other not in lost.message + usersite.message


# --------------------------------------------------------------------------------------------
# M3, HPC534: a component of a heterogeneous job that nothing starts in

#: the STAR alignment hetjob (trimmed): a plain loop, no srun at all
STAR_HETJOB = """#!/bin/bash
#SBATCH --cpus-per-task=2 --mem-per-cpu=32g --ntasks=1
#SBATCH hetjob
#SBATCH --cpus-per-task=2 --mem-per-cpu=6g  --ntasks=8
#srun --het-group=1 run.app
mkdir -p alignments
module load star
for file in trimmed/*.fastq.gz ; do
    base=$(basename "$file" .fastq.gz)
    STAR --runThreadN 24 --genomeDir index/M25 --readFilesIn "$file" --outFileNamePrefix "alignments/${base}_"
done
"""

HET = """#!/bin/bash
#SBATCH --time=00:30:00
#SBATCH --ntasks=4
#SBATCH hetjob
#SBATCH --ntasks=2
{body}
"""

THREE = """#!/bin/bash
#SBATCH --time=00:30:00
#SBATCH --ntasks=1
#SBATCH hetjob
#SBATCH --ntasks=2
#SBATCH hetjob
#SBATCH --ntasks=4 --gres=gpu:4
{body}
"""


def test_component_no_step_uses_is_named_with_its_resources() -> None:
    (finding,) = found(STAR_HETJOB, "HPC534")
    assert finding.line == 4 and finding.severity == "warning"
    assert finding.message.startswith("component 1 of the heterogeneous job (--cpus-per-task=2 --mem-per-cpu=6g "
                                      "--ntasks=8) is never used")
    assert "srun --het-group=1" in finding.message


@pytest.mark.parametrize("body", [
    "srun --het-group=0 apptainer exec img.sif ./ocean &\nsrun --het-group=1 apptainer exec img.sif ./ice &\nwait",
    "srun --het-group=0,1 ./coupled",
    "srun --pack-group=1 ./ice",
    "srun --het-group 1 ./ice",
    "srun -n 4 ./ocean : -n 2 ./ice",
    'OPTS="--het-group=1"\nsrun $OPTS ./ice',
    'eval "srun --het-group=1 ./ice"',
    "run() { srun --het-group=1 ./ice; }\nrun",
    "srun --het-group=$GROUP ./ice",
    'eval "$LAUNCH"',
    "bash launch_components.sh",
    "mpirun -n 6 ./coupled",
    'for host in $(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_1"); do ssh "$host" ./ice & done\nwait',
    'for ((g = 0; g < SLURM_HET_SIZE; g++)); do srun --het-group="$g" ./part & done\nwait',
], ids=["both-groups", "group-list", "pack-group", "spaced-value", "colon-form", "in-variable", "in-eval", "function",
        "group-variable", "unread-eval", "other-script", "mpirun", "ssh-by-nodelist", "het-size"])
def test_component_a_step_may_use_is_left_alone(body: str) -> None:
    assert not found(HET.format(body=body), "HPC534")


def test_only_the_components_left_out_are_reported() -> None:
    assert [f.line for f in found(THREE.format(body="srun --het-group=1 ./ice"), "HPC534")] == [7]
    assert not found(THREE.format(body="srun --het-group=1-2 ./ice"), "HPC534")
    two = found(THREE.format(body="srun ./ocean"), "HPC534")
    assert [f.line for f in two] == [5, 7] and "(--ntasks=4 --gres=gpu:4)" in two[1].message


def test_ordinary_job_is_not_judged() -> None:
    assert not found("#!/bin/bash\n#SBATCH --ntasks=8\npython train.py\n", "HPC534")
