"""Real-world scripts from the lint audit (/tmp/audit/REPORT.md, items 2-6, 11, 17, 19, 20): false findings
that must stay away and misses that must be caught. Each case is the audit's minimal reproduction, or a
near variant; "sbatch accepts" means the Slurm 22.05 client parsed it."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import Finding, lint, rules
from hpcwidgets.spec.slurm import SlurmJob


def _codes(text: str, *, info: bool = False) -> set[str]:
    return {f.code for f in lint(text) if info or f.severity != "info"}


def _only(text: str, code: str) -> list[Finding]:
    return [f for f in lint(text) if f.code == code]


# --------------------------------------------------------------------------------------------
# item 2: --gpus-per-task=TYPE:N (mila-docs multi-node example)

MILA = """#!/bin/bash
#SBATCH --gpus-per-task={gpt}
#SBATCH --ntasks-per-node=4
#SBATCH --nodes=2
srun apptainer exec --nv "$SCRATCH/images/pytorch_24.05.sif" python main.py
"""


@pytest.mark.parametrize("value", ["rtx8000:1", "a100:2", "a100:1,v100:1"])
def test_typed_gpus_per_task_is_valid_and_counts_gpus(value: str) -> None:
    found = lint(MILA.format(gpt=value))
    assert not {f.code for f in found} & {"HPC308", "HPC202"}, [f.format() for f in found]
    per_task = sum(int(item.rpartition(":")[2]) for item in value.split(","))
    assert SlurmJob(gpus_per_task=value, ntasks_per_node=4, nodes=2).gpus_on_each_node == 4 * per_task


def test_typed_gpus_per_task_feeds_the_gpu_rules() -> None:
    # GPUs are seen: a container without --nv is now reported (HPC201), $SLURM_GPUS_ON_NODE is a count
    assert "HPC201" in _codes(MILA.format(gpt="rtx8000:1").replace("--nv ", ""))
    single = ("#!/bin/bash\n#SBATCH --gpus-per-task=a100:1\n#SBATCH --ntasks-per-node=4\n"
              "torchrun --standalone --nproc-per-node=$SLURM_GPUS_ON_NODE train.py\n")
    assert not _codes(single)


@pytest.mark.parametrize("value,text", [
    ("a100:", "TYPE:COUNT"),           # sbatch: Invalid generic resource (gres) specification
    (":2", "TYPE:COUNT"),              # sbatch: Invalid generic resource (gres) specification
    ("2-4", "TYPE:COUNT"),             # sbatch --test-only: Invalid Trackable RESource (TRES) specification
    ("a100:0", "count of 1 or more"),
])
def test_malformed_gpus_per_task_text_gets_one_clear_message(value: str, text: str) -> None:
    problems = SlurmJob(gpus_per_task=value).problems()
    assert [p.field for p in problems] == ["gpus_per_task"], problems
    assert text in problems[0].message and "GPUs per task" in problems[0].message
    found = _only(f"#!/bin/bash\n#SBATCH --gpus-per-task={value}\nsrun python x.py\n", "HPC308")
    assert len(found) == 1 and found[0].line == 2


# --------------------------------------------------------------------------------------------
# item 3: HPC508 only for literal arrays that are never changed; brace expansion counts

ARRAY = "#!/bin/bash\n#SBATCH --array={spec}\n{body}\npython train.py ${{{name}[$SLURM_ARRAY_TASK_ID{shift}]}}\n"


@pytest.mark.parametrize("spec,body", [
    ("0-8", 'CONFIGS=()\nfor lr in 0.1 0.01 0.001; do\n  for seed in 1 2 3; do\n'
            '    CONFIGS+=("--lr $lr --seed $seed")\n  done\ndone'),        # R10: the grid-sweep idiom
    ("0-3", "CONFIGS=(a b); CONFIGS+=(c d)"),
    ("0-3", "CONFIGS=(a)\nCONFIGS[1]=b; CONFIGS[2]=c; CONFIGS[3]=d"),
    ("0-3", "CONFIGS=(a)\nreadarray -t CONFIGS < configs.txt"),
    ("0-3", "CONFIGS=(a)\nmapfile -t CONFIGS < configs.txt"),
    ("0-3", "CONFIGS=(a)\nread -r -a CONFIGS <<< \"$LINE\""),
    ("0-3", "CONFIGS=(a)\nif [ -f extra ]; then CONFIGS=(a b c d); fi"),
    ("0-9", "CONFIGS=({0..9})"),                                            # R11
    ("0-5", "CONFIGS=(lr{1,2}_{a..c})"),
    ("0-4", "CONFIGS=({0..8..2})"),
    ("0-2", 'CONFIGS=("{0..2}" x y)'),                                      # quoted braces: not guessed
])
def test_array_lengths_known_only_at_run_time_or_expanded_are_not_reported(spec: str, body: str) -> None:
    found = _only(ARRAY.format(spec=spec, body=body, name="CONFIGS", shift=""), "HPC508")
    assert not found, [f.format() for f in found]


def test_expanded_brace_ranges_are_still_checked() -> None:
    found = _only(ARRAY.format(spec="0-10", body="SEEDS=({0..9})", name="SEEDS", shift=""), "HPC508")
    assert len(found) == 1
    assert "task 10 " in found[0].message and "10 values" in found[0].message and "--array=0-9" in found[0].message


@pytest.mark.parametrize("body,shift", [("S=()", ""), ("S=(a)", "+1"), ("S=(a b c)", "+5")])
def test_no_suggested_array_has_a_negative_bound(body: str, shift: str) -> None:
    found = _only(ARRAY.format(spec="0-2", body=body, name="S", shift=shift), "HPC508")
    assert len(found) == 1
    assert "--array=-" not in found[0].message and "--1" not in found[0].message, found[0].message


def test_a_positive_shift_suggests_the_ids_that_reach_a_value() -> None:
    found = _only(ARRAY.format(spec="0-2", body="S=(a b c)", name="S", shift="+1"), "HPC508")
    assert len(found) == 1 and "task 2 " in found[0].message and "--array=0-1" in found[0].message
    before = _only(ARRAY.format(spec="0-2", body="S=(a b c)", name="S", shift="-1"), "HPC508")
    assert len(before) == 1 and "S[-1]" in before[0].message and "--array=1-3" in before[0].message


# --------------------------------------------------------------------------------------------
# item 4: module load "$VAR" resolved through the script; module problems at the module line

def test_module_name_from_the_scripts_own_variable_is_fine() -> None:
    text = ("#!/usr/bin/env bash\n#SBATCH --job-name=train\n#SBATCH --gpus=1\n"
            "declare -xr SINGULARITY_MODULE='singularitypro/3.11'\n"
            'module load "${SINGULARITY_MODULE}"\nsingularity exec --nv ../sandbox python train.py\n')
    assert not _codes(text), [f.format() for f in lint(text)]


@pytest.mark.parametrize("line", ['module load "$MODS"', "module load $(cat modules.txt)", "ml ${CUDA_MODULE}"])
def test_module_names_known_only_when_the_job_runs_are_not_checked(line: str) -> None:
    assert not _codes(f"#!/bin/bash\n#SBATCH --time=10\n{line}\npython x.py\n")


def test_bad_module_names_are_reported_at_the_module_line() -> None:
    text = ("#!/bin/bash\n#SBATCH --job-name=x\n#SBATCH --time=10\nCUDA=cuda=12.1\n"
            'module load "gcc 12"\nmodule load $CUDA\npython x.py\n')
    found = [(f.code, f.line) for f in lint(text) if f.severity != "info"]
    assert found == [("HPC510", 5), ("HPC510", 6)]
    assert "$CUDA" in _only(text, "HPC510")[1].message and "'cuda=12.1'" in _only(text, "HPC510")[1].message
    assert "HPC399" not in _codes(text)


# --------------------------------------------------------------------------------------------
# item 5: HPC214 only where mpirun in the container starts ranks on a job that may span nodes

def test_mpirun_version_in_a_container_starts_no_ranks() -> None:
    text = ("#!/bin/bash\n#SBATCH --time=0:10:00\n#SBATCH --nodes=2\n"
            "ch-run \"$img\" -- mpirun --version | grep -E '^mpirun'\n"
            'srun --cpus-per-task=1 ch-run "$img" -- /hello/hello\n')
    assert "HPC214" not in _codes(text)
    for flag in ("-V", "--help"):
        assert not _only(f"#!/bin/bash\n#SBATCH --nodes=2\napptainer exec i_1.sif mpirun {flag}\n", "HPC214")


def test_fully_contained_mpi_on_one_node_is_not_an_error() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=16\n"
            'apptainer exec "$SCRATCH/images/lammps_2Aug2023.sif" mpirun -np 16 lmp -in in.lj\n')
    assert not _only(text, "HPC214")
    assert "one node" in rules()["HPC214"].why


@pytest.mark.parametrize("head,step", [
    ("#SBATCH --nodes=2", "apptainer exec i_1.sif mpirun -np 4 ./a -h"),   # -h belongs to the program
    ("#SBATCH --ntasks=64", "apptainer exec i_1.sif mpirun -np 64 ./a"),  # may span nodes
    ("#SBATCH --nodes=1\n#SBATCH --ntasks=4", "srun apptainer exec i_1.sif mpirun -np 4 ./a"),  # 4 mpiruns
])
def test_mpirun_in_the_container_is_still_reported_where_it_breaks(head: str, step: str) -> None:
    assert _only(f"#!/bin/bash\n{head}\n{step}\n", "HPC214")


# --------------------------------------------------------------------------------------------
# item 6: HPC503 only for files located next to the script, not for running it again

@pytest.mark.parametrize("line", [
    "sbatch ${BASH_SOURCE[0]}", 'sbatch "$0"', 'sbatch $BASH_SOURCE "$@"', 'cp "$0" "$SCRATCH/run/"',
    'echo "running $0"', "log=${0%.sh}.log",
])
def test_running_or_naming_the_script_itself_is_fine(line: str) -> None:
    text = ("#!/bin/bash\n#SBATCH --time=10:00\n#SBATCH --signal=B:USR1@60\n"
            f'handler() {{ scancel --signal=USR1 "$SLURM_JOB_ID"; {line}; }}\ntrap handler SIGUSR1\n'
            "python train.py &\nwait\n")
    assert not _only(text, "HPC503")


@pytest.mark.parametrize("lines,line", [
    ('cd "$(dirname "$0")"', 3),
    ('source "${BASH_SOURCE%/*}/env.sh"', 3),
    ('DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)\nsource "$DIR/env.sh"', 3),
    ('python "$0"/../tools/prep.py', 3),
    ('SELF=$(readlink -f "$0")\necho start\nsource "$(dirname "$SELF")/env.sh"', 5),
    ('run() {\n  echo x\n  cd "$(dirname $(realpath $0))"\n}', 5),
])
def test_locating_files_next_to_the_script_is_reported_at_its_line(lines: str, line: int) -> None:
    found = _only(f"#!/bin/bash\n#SBATCH --time=10:00\n{lines}\npython train.py\n", "HPC503")
    assert [f.line for f in found] == [line]


@pytest.mark.parametrize("lines", [
    'cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")}"',
    'if [ -n "$SLURM_SUBMIT_DIR" ]; then\n  cd "$SLURM_SUBMIT_DIR"\nelse\n'
    '  SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"\n  cd "$SCRIPT_DIR"\nfi',
    'if [ -n "${SLURM_JOB_ID:-}" ]; then cd "$SLURM_SUBMIT_DIR"; else cd "$(dirname "$0")"; fi',
])
def test_the_script_location_as_the_fallback_outside_slurm_is_fine(lines: str) -> None:
    assert not _only(f"#!/bin/bash\n#SBATCH --time=10:00\n{lines}\npython train.py\n", "HPC503")
    # the same location used unconditionally is still reported
    assert _only(f'#!/bin/bash\n#SBATCH --time=10:00\n{lines}\ncd "$(dirname "$0")"\n', "HPC503")


def test_the_script_directory_is_reported_once_where_it_is_computed() -> None:
    text = ('#!/bin/bash\n#SBATCH --time=10:00\nSCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)\n'
            'source "$SCRIPT_DIR/env.sh"\npython "$SCRIPT_DIR/run.py"\n')
    assert [f.line for f in _only(text, "HPC503")] == [3]


# --------------------------------------------------------------------------------------------
# items 11 and 17: HPC201 for a CPU helper step, and --nv written after the image

HELPER = """#!/bin/bash
#SBATCH --gres=gpu:1
IMG=$SCRATCH/images/pytorch_24.05.sif
apptainer exec "$IMG" {helper}
apptainer exec --nv --bind "$TMPDIR:/data" "$IMG" python train.py --data /data
"""


@pytest.mark.parametrize("helper", ['tar -xf "$SCRATCH/imagenet.tar" -C "$TMPDIR"', "mpicc -O2 -o solver solver.c"])
def test_a_cpu_helper_step_next_to_a_gpu_step_is_info(helper: str) -> None:
    found = lint(HELPER.format(helper=helper))
    assert "HPC201" not in {f.code for f in found}
    info = [f for f in found if f.code == "HPC220"]
    assert len(info) == 1 and info[0].severity == "info" and info[0].line == 4 and info[0].fix is None
    assert "line 5" in info[0].message and "helper" in info[0].message


def test_without_any_gpu_step_the_missing_flag_is_still_an_error() -> None:
    text = HELPER.format(helper="tar -xf x.tar").replace("--nv ", "")
    assert [f.line for f in _only(text, "HPC201")] == [4, 5] and not _only(text, "HPC220")
    launcher = HELPER.format(helper="torchrun --standalone --nproc-per-node=1 train.py")
    assert [f.line for f in _only(launcher, "HPC201")] == [4]   # a training launcher is no helper


@pytest.mark.parametrize("flags", ["--nv", "--bind a:/b --nv", "--nv -B a:/b"])
def test_nv_after_the_image_is_reported_once_and_fixed_once(flags: str) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\nsingularity exec img_2.15.sif {flags} python train.py\n"
    assert _codes(text) == {"HPC203"}
    new, fixed = fix_script(text)
    assert [f.code for f in fixed] == ["HPC203"]
    assert new.count("--nv") == 1 and "img_2.15.sif python train.py" in new and not _codes(new)


def test_nv_after_the_image_of_run_is_one_finding_either_way() -> None:
    # run hands every word after the image to the runscript: whichever rule owns it, it is reported once
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsingularity run img_2.15.sif --nv\n"
    assert len({"HPC201", "HPC203"} & _codes(text)) == 1


# --------------------------------------------------------------------------------------------
# item 19: the backslash lost before the program line

def test_a_lost_backslash_before_the_program_line() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:2\napptainer exec --nv \\\n    --bind \"$SCRATCH/data:/data\" \\\n"
            "    \"$SCRATCH/images/pytorch_24.05.sif\"\n"
            "    torchrun --standalone --nnodes=1 --nproc-per-node=2 train.py\n")
    found = _only(text, "HPC504")
    assert [f.line for f in found] == [6]
    assert "line 5" in found[0].message and "no command" in found[0].message


def test_a_one_line_exec_without_command_then_an_indented_line() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv img.sif\n    python train.py\n"
    assert [f.line for f in _only(text, "HPC504")] == [4]


@pytest.mark.parametrize("body", [
    "srun --ntasks=1 \\\n  hostname\npython train.py",              # next command at the same depth
    "srun --ntasks=1 \\\n  hostname\n\n  python train.py",          # a blank line ends the command
    "srun --ntasks=1 \\\n  hostname &&\n  python train.py",         # joined by &&
    "srun --ntasks=1 \\\n  python a.py &\n  srun --ntasks=1 python b.py &\nwait",  # sent to the background
    "apptainer run img.sif\n  python train.py",                      # run needs no command; one line
    "echo a\n  echo b",                                              # no continued command before it
])
def test_indented_lines_that_are_not_lost_continuations(body: str) -> None:
    assert not _only(f"#!/bin/bash\n#SBATCH --time=10\n{body}\n", "HPC504")


# --------------------------------------------------------------------------------------------
# item 20: HPC110 for accelerate and deepspeed; HPC207/208 for exec/run/build from a registry

ACCEL = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
{launch}
"""


@pytest.mark.parametrize("launch", [
    "accelerate launch --multi_gpu --num_machines 2 --num_processes 8 --machine_rank 0 "
    "--main_process_ip $MASTER_ADDR --main_process_port 29500 train.py",                    # R26
    "accelerate launch --multi_gpu --num_machines=$SLURM_NNODES --num_processes 8 train.py",
    "apptainer exec --nv img_1.sif accelerate launch --multi_gpu --num-machines 2 train.py",
    "python -m accelerate.commands.launch --multi_gpu --num_machines 2 train.py",
    "accelerate launch --num_processes 4 train.py",                  # the only launch: one node idles
    "deepspeed --num_nodes 2 --num_gpus 4 train.py --deepspeed",      # no hostfile: stops
    "deepspeed train.py --deepspeed --deepspeed_config ds.json",      # no hostfile, only launch
    "python -m torch.distributed.run --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
    "--rdzv-endpoint=$MASTER_ADDR:29500 train.py",
])
def test_other_launchers_in_the_batch_shell_of_a_multi_node_job(launch: str) -> None:
    found = _only(ACCEL.format(launch=launch), "HPC110")
    assert [f.line for f in found] == [6], [f.format() for f in lint(ACCEL.format(launch=launch))]


@pytest.mark.parametrize("launch", [
    "srun accelerate launch --multi_gpu --num_machines 2 --machine_rank $SLURM_NODEID train.py",
    "srun bash -c 'accelerate launch --multi_gpu --num_machines 2 --machine_rank $SLURM_NODEID train.py'",
    "accelerate launch --config_file ds_zero3.yaml --num_machines 2 train.py",   # DeepSpeed's pdsh launcher
    "accelerate launch --use_deepspeed --num_machines 2 train.py",
    "deepspeed --hostfile hostfile train.py --deepspeed",                        # deepspeed starts the nodes
    "srun hostname\naccelerate launch --num_processes 4 train.py",               # something else uses them
])
def test_launches_that_reach_the_other_nodes_or_may_do_so(launch: str) -> None:
    assert not _only(ACCEL.format(launch=launch), "HPC110")


def test_one_node_jobs_are_left_alone() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:4\naccelerate launch --multi_gpu --num_processes 4 train.py\n"
    assert not _only(text, "HPC110")


def test_exec_from_a_registry_in_a_job() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n"
            "singularity exec --nv docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime python train.py\n")
    cache, every = _only(text, "HPC207"), _only(text, "HPC208")
    assert [f.line for f in cache] == [3] and "$HOME/.singularity/cache" in cache[0].message
    assert "SINGULARITY_CACHEDIR" in cache[0].message
    assert [f.line for f in every] == [3] and "singularity pull" in every[0].message
    scratch = text.replace("singularity exec", 'export SINGULARITY_CACHEDIR="$SCRATCH/.sing"\nsingularity exec')
    assert not _only(scratch, "HPC207") and _only(scratch, "HPC208")


def test_build_from_a_registry_in_a_job() -> None:
    build = "apptainer build --force x.sif docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{build}\napptainer exec --nv x.sif python train.py\n"
    assert {f.code for f in lint(text) if f.line == 3} == {"HPC207", "HPC208"}
    guarded = ('#!/bin/bash\nexport APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"\n'
               "[ -f x.sif ] || apptainer build x.sif docker://alpine:3.19\n")
    assert not _codes(guarded)
    local = "#!/bin/bash\napptainer build x.sif recipe.def\n"
    assert not {"HPC207", "HPC208"} & _codes(local)


def test_one_cache_finding_per_assignment_under_home() -> None:
    text = ('#!/bin/bash\nexport APPTAINER_CACHEDIR="$HOME/.cache/apptainer"\n'
            "apptainer exec docker://alpine:3.19 true\napptainer exec docker://alpine:3.19 true\n")
    assert [f.line for f in _only(text, "HPC207")] == [2]
