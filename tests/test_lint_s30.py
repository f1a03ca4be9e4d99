"""Session 30: a runscript or ENTRYPOINT that drops the arguments of apptainer run (HPC716), a host mpirun of another
MPI family than the image's (HPC144), a rendezvous file on node-local storage (HPC549), an attach command without
--overlap (HPC550), a venv copied into another Python (HPC717), a written GPU wrapper (HPC133), what a late #SBATCH
line will need once it is moved up (HPC501); and read-back edits of options a script orders otherwise."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

DEF = "Bootstrap: docker\nFrom: python:3.11-slim\n\n"
HEAD = "#!/bin/bash\n#SBATCH --ntasks=8\n#SBATCH --time=01:00:00\n"


def found(text: str, code: str, path: str = "") -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, path=path) if f.code == code]


# --- HPC716 ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("section", "line", "says"), [
    ("%runscript\n    exec python /opt/train.py\n", 5, 'python /opt/train.py without "$@"'),
    ("%runscript\n    cd /opt/app\n    python -u train.py --config /opt/app/base.yaml\n", 6,
     "apptainer run IMAGE …"),
    ('%runscript\n    echo "starting"\n    torchrun --standalone --nproc-per-node=4 /opt/train.py --epochs 10\n', 6,
     "torchrun --standalone --nproc-per-node=4 …"),
    ("%apprun train\n    exec python /opt/train.py\n", 5, "apptainer run --app NAME IMAGE …"),
    ("%runscript\n    exec /bin/bash\n", 5, "/bin/bash without"),
])
def test_a_runscript_that_starts_a_program_without_its_arguments(section, line, says):
    [(at, message)] = found(DEF + section, "HPC716", "image.def")
    assert at == line and says in message and '"$@"' in message


@pytest.mark.parametrize("section", [
    '%runscript\n    exec python /opt/train.py "$@"\n',
    "%runscript\n    exec python /opt/train.py $*\n",
    '%runscript\n    if [ $# -eq 0 ]; then exec python /opt/train.py; fi\n    exec "$@"\n',
    '%runscript\n    exec python "${@:1}"\n',
    '%runscript\n    MODEL=${1:-small}\n    exec python /opt/serve.py --model "$MODEL"\n',
    '%runscript\n    while getopts e: o; do :; done\n    exec python /opt/train.py --epochs "$OPTARG"\n',
    # only shows something: there is no program to hand arguments to
    '%runscript\n    echo "Run programs with apptainer exec IMAGE python …"\n    cat /opt/README\n',
    # no runscript at all
    "%post\n    pip install torch==2.3.1\n",
    # an app that passes them on, beside the default runscript that does too
    '%runscript\n    exec python "$@"\n%apprun eval\n    exec python /opt/eval.py "$@"\n',
])
def test_a_runscript_that_passes_its_arguments_on_or_starts_nothing_is_left_alone(section):
    assert found(DEF + section, "HPC716", "image.def") == []


def test_each_app_is_judged_alone():
    text = DEF + '%apprun train\n    exec python /opt/train.py "$@"\n%apprun eval\n    exec python /opt/eval.py\n'
    [(line, message)] = found(text, "HPC716", "image.def")
    assert line == 7 and "/opt/eval.py" in message


@pytest.mark.parametrize(("text", "line", "exec_form"), [
    ("FROM python:3.11-slim\nENTRYPOINT python /app/train.py\n", 2, '["python", "/app/train.py"]'),
    ("FROM python:3.11-slim\nWORKDIR /app\nENTRYPOINT exec torchrun --standalone train.py\nCMD --epochs 3\n", 3,
     '["torchrun", "--standalone", "train.py"]'),            # exec is the shell's word, not a program
    ("FROM python:3.11-slim AS build\nRUN true\nFROM python:3.11-slim\nENTRYPOINT python \\\n    /app/train.py\n", 4,
     '["python", "/app/train.py"]'),
])
def test_a_shell_form_entrypoint_drops_the_run_arguments(text, line, exec_form):
    [(at, message)] = found(text, "HPC716", "Dockerfile")
    assert at == line and exec_form in message and "/bin/sh -c" in message


@pytest.mark.parametrize(("entrypoint", "says", "fixed"), [
    ('["/bin/sh", "-c", "python -m app"]', "never reads its arguments",
     '["/bin/sh", "-c", "python -m app \\"$@\\"", "sh"]'),
    ('["/bin/bash", "-c", "exec python -m app \\"$@\\""]', "as its $0",
     '["/bin/bash", "-c", "exec python -m app \\"$@\\"", "bash"]'),
])
def test_an_exec_form_entrypoint_running_a_shell_script_that_loses_the_arguments(entrypoint, says, fixed):
    [(_, message)] = found(f"FROM python:3.11-slim\nENTRYPOINT {entrypoint}\n", "HPC716", "Dockerfile")
    assert says in message and message.endswith(f"ENTRYPOINT {fixed}")
    assert found(f"FROM python:3.11-slim\nENTRYPOINT {fixed}\n", "HPC716", "Dockerfile") == []


@pytest.mark.parametrize("text", [
    'FROM python:3.11-slim\nENTRYPOINT ["python", "/app/train.py"]\n',
    "FROM python:3.11-slim\nCMD python /app/train.py\n",   # run arguments replace CMD
    # an earlier stage's ENTRYPOINT is not the image's
    "FROM python:3.11-slim AS build\nENTRYPOINT python x.py\nFROM python:3.11-slim\nCOPY --from=build /x /x\n",
    # a later exec-form ENTRYPOINT replaces the shell-form one
    'FROM python:3.11-slim\nENTRYPOINT python x.py\nENTRYPOINT ["python", "x.py"]\n',
    'FROM python:3.11-slim\nENTRYPOINT ["/bin/sh", "-c", "exec python x.py \\"$@\\"", "--"]\n',
    'FROM python:3.11-slim\nENTRYPOINT ["/usr/bin/tini", "--", "python", "x.py"]\n',
])
def test_an_exec_form_or_no_entrypoint_is_left_alone(text):
    assert found(text, "HPC716", "Dockerfile") == []


def test_the_exec_form_apptainer_reads_is_the_one_the_message_gives():
    """The JSON list the message proposes is one Docker (and the model reader) reads back as the same words."""
    import json
    [(_, message)] = found("FROM python:3.11-slim\nENTRYPOINT python '/app/my train.py' --lr 0.1\n", "HPC716",
                           "Dockerfile")
    proposed = json.loads(message.rsplit("ENTRYPOINT ", 1)[1])
    assert proposed == ["python", "/app/my train.py", "--lr", "0.1"]
    assert found("FROM python:3.11-slim\nENTRYPOINT " + json.dumps(proposed) + "\n", "HPC716", "Dockerfile") == []


# --- HPC144 ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "line", "says"), [
    ("module load openmpi/4.1.6\nmpirun -n 8 apptainer exec solver_mpich-4.1.sif /opt/app/solver\n", 5,
     "mpirun is Open MPI (module openmpi/4.1.6), but the image solver_mpich-4.1.sif has an MPICH-family MPI"),
    ('module load intel-mpi/2021.9\nIMG=$SCRATCH/images/app_openmpi4.sif\nmpiexec -np 8 singularity run "$IMG"\n',
     6, "mpiexec is an MPICH-family MPI (module intel-mpi/2021.9), but the image app_openmpi4.sif has Open MPI"),
    ("module load hpcx/2.18\nmpirun --map-by ppr:4:node -x LD_LIBRARY_PATH apptainer exec --nv app_mpich.sif ./a\n",
     5, "module hpcx/2.18"),
    ("module load cray-mpich\nmpirun -n 8 apptainer exec --bind /scratch ompi5_app.sif ./a\n", 5, "has Open MPI"),
    ("spack load openmpi@4.1.6\ntime mpirun -np 8 apptainer exec mvapich2_app.sif ./a\n", 5, "spack load openmpi@4.1.6"),
])
def test_a_host_mpirun_of_the_other_mpi_family_than_the_image(body, line, says):
    [(at, message)] = found(HEAD + body, "HPC144")
    assert at == line and says in message and "rank 0 of 1" in message
    assert found(HEAD + body, "HPC215") == []   # the info note on the hybrid model gives way to the error


@pytest.mark.parametrize("body", [
    "module load mpich/4.1.2\nmpirun -n 8 apptainer exec solver_mpich-4.1.sif /opt/app/solver\n",
    "module load intel-mpi\nmpirun -n 8 apptainer exec app_mpich.sif ./a\n",          # one ABI
    "module load OpenMPI/4.1.5-GCC-12.3.0\nmpirun apptainer exec app.sif ./a\n",        # the image says nothing
    "mpirun -n 8 apptainer exec app_mpich.sif ./a\n",                                   # the host says nothing
    "module load openmpi\nmodule swap openmpi mpich\nmpirun -n 8 apptainer exec app-mpich.sif ./a\n",
    "module load openmpi/4.1.6\nsrun --mpi=pmi2 apptainer exec app_mpich.sif ./a\n",    # srun starts the ranks
])
def test_the_same_family_or_names_that_say_nothing_are_left_alone(body):
    assert found(HEAD + body, "HPC144") == []


def test_the_hybrid_model_note_stays_where_nothing_shows_a_mismatch():
    body = "module load mpich/4.1.2\nmpirun -n 8 apptainer exec solver_mpich-4.1.sif /opt/app/solver\n"
    assert [line for line, _ in found(HEAD + body, "HPC215")] == [5]


# --- HPC501: what the late line needs once it is moved up -----------------------------------------------------------

@pytest.mark.parametrize(("directive", "says"), [
    ("#SBATCH --output=$HOME/logs/%j.out", "so $HOME is not expanded"),
    ("#SBATCH --chdir=${SCRATCH}/run", "so ${SCRATCH} is not expanded"),
    ("#SBATCH -o ~/logs/%j.out", "sbatch does not expand ~"),
    ("#SBATCH --error=~/logs/%j.err", "sbatch does not expand ~"),
])
def test_a_late_directive_also_says_what_it_needs_once_moved(directive, says):
    text = "#!/bin/bash\nmodule load cuda\n" + directive + "\npython train.py\n"
    [(line, message)] = found(text, "HPC501")
    assert line == 3 and "move it above the first command" in message and says in message


@pytest.mark.parametrize("directive", ["#SBATCH --output=logs/%j.out", "#SBATCH --comment=costs\\ $5",
                                       "#SBATCH --job-name='$name'"])
def test_a_late_directive_without_such_a_value_says_only_to_move_it(directive):
    text = "#!/bin/bash\nmodule load cuda\n" + directive + "\npython train.py\n"
    [(_, message)] = found(text, "HPC501")
    assert message.endswith("move it above the first command")


# --- HPC549 ---------------------------------------------------------------------------------------------------------

MULTI = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n#SBATCH --time=01:00:00\n"


@pytest.mark.parametrize(("body", "line", "says"), [
    ("srun -N1 -n1 --overlap dask scheduler --scheduler-file /tmp/s.json &\n"
     "srun --ntasks-per-node=1 dask worker --scheduler-file /tmp/s.json &\npython client.py\n", 7,
     "the Dask scheduler file /tmp/s.json is on node-local storage (/tmp)"),
    ("srun --nodes=2 --ntasks-per-node=1 dask-worker --scheduler-file=$SLURM_TMPDIR/s.json\n", 6,
     "($SLURM_TMPDIR)"),
    ("srun python train.py --dist-url file:///tmp/sharedfile --world-size 8\n", 6,
     "the file:// rendezvous file /tmp/sharedfile"),
    ('SYNC=$TMPDIR/sync\nsrun python train.py --init-method "file://$SYNC"\n', 7, "$TMPDIR/sync"),
    ("srun apptainer exec --nv img_2.3.sif python train.py --dist-url file:///dev/shm/rdzv\n", 6, "/dev/shm/rdzv"),
])
def test_a_rendezvous_file_on_node_local_storage_used_on_several_nodes(body, line, says):
    [(at, message)] = found(MULTI + body, "HPC549")
    assert at == line and says in message and "runs on 2 nodes" in message


@pytest.mark.parametrize(("head", "body"), [
    (MULTI, 'srun python train.py --dist-url "file://$SCRATCH/sync"\n'),                       # shared storage
    (MULTI, "srun -N1 python train.py --dist-url file:///tmp/x\n"),                            # one node
    (MULTI, "srun dask worker --scheduler-file \"$SLURM_SUBMIT_DIR/s.json\"\n"),
    ("#!/bin/bash\n#SBATCH --ntasks=4\n#SBATCH --time=01:00:00\n",                             # a one-node job
     "srun -n1 --overlap dask scheduler --scheduler-file /tmp/s.json &\nsrun -n3 dask worker --scheduler-file /tmp/s.json\n"),
    (MULTI, "srun python train.py --dist-url tcp://$head:29500\n"),
])
def test_shared_storage_one_node_or_no_file_is_left_alone(head, body):
    assert found(head + body, "HPC549") == []


# --- HPC550 ---------------------------------------------------------------------------------------------------------

HOLD = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:1\n#SBATCH --time=04:00:00\n"


@pytest.mark.parametrize(("body", "line", "shown"), [
    ('echo "attach with: srun --jobid=$SLURM_JOB_ID --pty bash"\nsrun sleep infinity\n', 5,
     "srun --jobid=$SLURM_JOB_ID --pty bash"),
    ('printf "watch the GPU: srun --jobid %s --pty nvidia-smi -l 5\\n" "$SLURM_JOB_ID"\nsrun python train.py\n', 5,
     "srun --jobid %s --pty nvidia-smi -l 5"),
    ('srun python train.py &\necho "monitor: srun --jobid=${SLURM_JOB_ID} --pty htop"\nwait\n', 6,
     "srun --jobid=${SLURM_JOB_ID} --pty htop"),
])
def test_a_printed_attach_command_without_overlap(body, line, shown):
    [(at, message)] = found(HOLD + body, "HPC550")
    assert at == line and shown in message and "print it with --overlap" in message


def test_the_fix_adds_overlap_after_the_job_id_and_clears_the_finding():
    from hpcwidgets.fixes import apply_fix
    text = HOLD + 'echo "attach with: srun --jobid=$SLURM_JOB_ID --pty bash"\nsrun sleep infinity\n'
    [finding] = [f for f in lint(text) if f.code == "HPC550"]
    fixed = apply_fix(text, finding.fix)
    assert 'echo "attach with: srun --jobid=$SLURM_JOB_ID --overlap --pty bash"' in fixed
    assert found(fixed, "HPC550") == []


@pytest.mark.parametrize("body", [
    'echo "srun --jobid=$SLURM_JOB_ID --overlap --pty bash"\nsrun sleep infinity\n',
    'echo "srun --jobid=$SLURM_JOB_ID --pty bash"\nsleep infinity\n',              # no step holds the CPUs
    'echo "srun --jobid=$SLURM_JOB_ID --pty bash"\nsrun --overlap sleep infinity\n',
    'export SLURM_OVERLAP=1\necho "srun --jobid=$SLURM_JOB_ID --pty bash"\nsrun sleep infinity\n',
    'echo "squeue -j $SLURM_JOB_ID"\nsrun python train.py\n',
])
def test_an_attach_command_that_can_start_is_left_alone(body):
    assert found(HOLD + body, "HPC550") == []


# --- HPC133: a wrapper the script writes with a here-document ------------------------------------------------------

def _select_gpu(body: str, delimiter: str = "EOF", request: str = "#SBATCH --gpus-per-task=1") -> str:
    return ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=8\n" + request + "\n#SBATCH --time=01:00:00\n"
            f"cat << {delimiter} > select_gpu\n#!/bin/bash\n{body}\nexec \\$*\nEOF\nchmod +x ./select_gpu\n"
            "srun ./select_gpu ./app\n")


@pytest.mark.parametrize(("text", "says"), [
    (_select_gpu("export ROCR_VISIBLE_DEVICES=\\$SLURM_LOCALID"), "ROCR_VISIBLE_DEVICES=$SLURM_LOCALID in ./select_gpu"),
    (_select_gpu("export HIP_VISIBLE_DEVICES=${SLURM_LOCALID}", delimiter="'EOF'"), "HIP_VISIBLE_DEVICES"),
    (_select_gpu('CUDA_VISIBLE_DEVICES="\\${SLURM_LOCALID}"; export CUDA_VISIBLE_DEVICES'), "CUDA_VISIBLE_DEVICES"),
    (_select_gpu("export ROCR_VISIBLE_DEVICES=\\$SLURM_LOCALID").replace("srun ./select_gpu", "srun bash select_gpu"),
     "in select_gpu (written on line 6)"),
])
def test_a_written_wrapper_that_picks_the_gpu_by_local_rank_under_one_gpu_per_task(text, says):
    [(line, message)] = found(text, "HPC133")
    assert line == 12 and says in message and "(written on line 6)" in message


@pytest.mark.parametrize("text", [
    # every task sees the node's GPUs: picking one by local rank is the point of the wrapper (LUMI's pattern)
    _select_gpu("export ROCR_VISIBLE_DEVICES=\\$SLURM_LOCALID", request="#SBATCH --gpus-per-node=8"),
    # the batch shell fills $SLURM_LOCALID in when it writes the file: not each task's own (not this rule's)
    _select_gpu("export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID"),
    # a wrapper that leaves the devices alone
    _select_gpu("export OMP_NUM_THREADS=7"),
])
def test_a_written_wrapper_that_is_right_here_is_left_alone(text):
    assert found(text, "HPC133") == []


# --- HPC717 ---------------------------------------------------------------------------------------------------------

BUILD = "FROM python:3.11-slim AS build\nRUN python -m venv /opt/venv && /opt/venv/bin/pip install numpy==1.26.4\n"


@pytest.mark.parametrize(("final", "says"), [
    ("FROM ubuntu:22.04\nRUN apt-get update && apt-get install -y python3 && rm -rf /var/lib/apt/lists/*\n"
     "COPY --from=build /opt/venv /opt/venv\n", "has Python 3.10 (ubuntu:22.04)"),
    ("FROM nvidia/cuda:12.4.1-runtime-ubuntu24.04\nRUN apt-get update && apt-get install -y \\\n"
     "    python3-venv \\\n && rm -rf /var/lib/apt/lists/*\nCOPY --from=build /opt/venv /opt/venv\n",
     "has Python 3.12 (nvidia/cuda:12.4.1-runtime-ubuntu24.04)"),
    ("FROM python:3.12-slim\nCOPY --from=build /opt/venv /opt/venv\n", "has Python 3.12 (python:3.12-slim)"),
    ("FROM debian:12-slim\nCOPY --from=build /opt /opt\n", "has no Python (nothing installs python3 on debian:12-slim)"),
    ("FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04\nRUN apt-get update && apt-get install -y python3.12\n"
     "COPY --from=0 /opt/venv /opt/venv\n", "has Python 3.12"),
    # the same version, another interpreter: python:3.11's is /usr/local/bin/python3.11, bookworm's /usr/bin/python3.11
    ("FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y python3\n"
     "COPY --from=build /opt/venv /opt/venv\n", "has Python 3.11 in /usr/bin, not in /usr/local/bin"),
])
def test_a_venv_copied_into_an_image_of_another_python(final, says):
    [(line, message)] = found(BUILD + final, "HPC717", "Dockerfile")
    assert "COPY --from" in (BUILD + final).split("\n")[line - 1] and says in message and "Python 3.11" in message


@pytest.mark.parametrize("text", [
    BUILD + "FROM python:3.11-slim\nCOPY --from=build /opt/venv /opt/venv\n",
    BUILD + "FROM python:3.11.9-slim-bookworm\nCOPY --from=build /opt/venv /opt/venv\n",
    # both stages on Debian's python3 (3.11 in /usr/bin)
    "FROM debian:bookworm AS build\nRUN apt-get update && apt-get install -y python3-venv\n"
    "RUN python3 -m venv /opt/venv\nFROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y python3\n"
    "COPY --from=build /opt/venv /opt/venv\n",
    BUILD + "FROM build AS test\nRUN /opt/venv/bin/python -c 'import numpy'\n",  # built on the stage itself
    BUILD + "FROM pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime\nCOPY --from=build /opt/venv /opt/venv\n",  # untold
    BUILD + "FROM ubuntu:22.04\nCOPY --from=build /opt/app /opt/app\n",            # not the environment
    # a conda environment carries its own Python
    "FROM continuumio/miniconda3:24.1.2-0 AS build\nRUN conda create -p /opt/env python=3.11 numpy\n"
    "FROM ubuntu:22.04\nCOPY --from=build /opt/env /opt/env\n",
])
def test_the_same_python_or_an_untold_one_is_left_alone(text):
    assert found(text, "HPC717", "Dockerfile") == []


# --- read-back: an edited option found alone where the script orders its options otherwise ------------------------

def _edited(text: str, **changes: object) -> str:
    import hpcwidgets as hw
    model = hw.parse_script(text)
    for part, fields in changes.items():
        model = model.replace(**{part: getattr(model, part).replace(**fields)})
    return hw.render(model, validate=False)


STEP_HEAD = "#!/bin/bash\n#SBATCH -N 1\n#SBATCH -n 4\n#SBATCH -c 4\n#SBATCH -t 10\n"
TORCHRUN = ("srun --cpus-per-task=16 apptainer exec --nv img.sif \\\n"
            "    torchrun --rdzv-id=$SLURM_JOB_ID --rdzv-backend=c10d --rdzv-endpoint=$head:29500 \\\n"
            "    --nproc_per_node 4 --nnodes 2 \\\n    train.py --epochs 3\n")


@pytest.mark.parametrize(("step", "part", "fields", "now"), [
    ("srun -c 4 -n 4 --mpi=pmix python train.py", "srun", {"ntasks": 8}, "srun -c 4 -n 8 --mpi=pmix python train.py"),
    ("srun -c 4 -n 4 --mpi=pmix python train.py", "srun", {"cpus_per_task": 2},
     "srun -c 2 -n 4 --mpi=pmix python train.py"),
    ("srun --mpi=pmix --cpus-per-task 4 --ntasks 4 python train.py", "srun", {"ntasks": 2},
     "srun --mpi=pmix --cpus-per-task 4 --ntasks 2 python train.py"),
    ("srun -c 4 -n 4 \\\n    python train.py", "srun", {"ntasks": 8}, "srun -c 4 -n 8 \\\n    python train.py"),
])
def test_an_option_the_script_orders_otherwise_is_edited_where_it_stands(step, part, fields, now):
    assert _edited(STEP_HEAD + step + "\n", **{part: fields}) == STEP_HEAD + now + "\n"


def test_a_torchrun_option_written_apart_and_in_another_order_is_edited_in_place():
    head = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"
            "#SBATCH --cpus-per-task=16\nhead=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n")
    assert _edited(head + TORCHRUN, launcher={"nproc_per_node": 2}) == \
        head + TORCHRUN.replace("--nproc_per_node 4", "--nproc_per_node 2")


def test_an_option_written_twice_in_the_command_is_not_guessed_at():
    """The same words also stand in the program's arguments: no one place, so the step is written as rendered, and
    what it says is still the edited model."""
    import hpcwidgets as hw
    text = STEP_HEAD + "srun -c 4 -n 4 python train.py -n 4\n"
    out = _edited(text, srun={"ntasks": 8})
    assert "train.py -n 4" in out
    step = hw.parse_script(out).srun
    assert step.ntasks == 8 and step.cpus_per_task == 4


@pytest.mark.parametrize(("step", "part", "fields", "now"), [
    # taken out: the script writes --nv before --cleanenv, the renderer after it; the line break stays
    ("apptainer exec --nv --cleanenv \\\n  --bind /gpfs img.sif python main.py", "container", {"nv": False},
     "apptainer exec --cleanenv \\\n  --bind /gpfs img.sif python main.py"),
    ("srun -l -n 4 python train.py", "srun", {"ntasks": None}, "srun -l python train.py"),
])
def test_a_word_taken_out_where_the_script_orders_its_options_otherwise(step, part, fields, now):
    head = "#!/bin/bash\n#SBATCH -N 1\n#SBATCH -n 4\n#SBATCH --gres=gpu:1\n"
    assert _edited(head + step + "\n", **{part: fields}) == head + now + "\n"


# --- the helper audit of the new rules (H1): its misses and false alarms ---------------------------------------------

def test_hpc144_reads_mpirun_inside_a_function():
    text = (HEAD + "spack load openmpi@4.1.6\nrun_case () {\n  mpiexec -n \"$1\" apptainer exec nekrs_mpich.sif nekrs\n"
            "}\nrun_case 8\n")
    assert [line for line, _ in found(text, "HPC144")] == [6]


def test_hpc549_reads_a_default_expansion_of_a_node_local_variable():
    text = MULTI + "srun --ntasks-per-node=1 dask worker --scheduler-file \"${TMPDIR:-/tmp}/s.json\"\n"
    [(_, message)] = found(text, "HPC549")
    assert "${TMPDIR:-/tmp}/s.json" in message


def test_hpc549_reads_a_variable_whose_value_is_a_default_expansion():
    text = MULTI + ('SCHEDFILE="${TMPDIR:-/tmp}/s.json"\n'
                    "srun -N1 -n1 --overlap dask scheduler --scheduler-file $SCHEDFILE &\nsleep 10\n"
                    'srun -N2 --ntasks-per-node=1 dask worker --scheduler-file "$SCHEDFILE" &\n')
    [(line, message)] = found(text, "HPC549")
    assert line == 9 and "${TMPDIR:-/tmp}/s.json" in message


def test_hpc550_reads_an_attach_command_a_cat_here_document_prints():
    text = HOLD + "cat <<EOF\nattach with:\n  srun --jobid=${SLURM_JOB_ID} --pty bash -l\nEOF\nsrun sleep infinity\n"
    [(line, message)] = found(text, "HPC550")
    assert line == 5 and "srun --jobid=${SLURM_JOB_ID} --pty bash -l" in message


def test_hpc550_reads_an_attach_command_written_to_a_file_for_later():
    text = HOLD + ('cat > "$HOME/vscode-$SLURM_JOB_ID.txt" <<EOF\nsrun --jobid=$SLURM_JOB_ID --pty bash\nEOF\n'
                   "srun sleep infinity\n")
    [(line, message)] = found(text, "HPC550")
    assert line == 5 and "the step on line 8" in message


@pytest.mark.parametrize("body", [
    # a quick step before the job waits in a bare sleep, which holds no step's CPUs
    'echo "attach: srun --jobid=$SLURM_JOB_ID --pty bash"\nsrun mkdir -p /tmp/$USER/work\nsleep infinity\n',
    'srun hostname\necho "attach: srun --jobid=$SLURM_JOB_ID --pty bash"\nsleep infinity\n',
])
def test_hpc550_leaves_alone_what_holds_nothing_or_prints_nothing(body):
    assert found(HOLD + body, "HPC550") == []


def test_hpc527_leaves_a_job_that_ends_in_sleep_infinity_alone():
    text = "#!/bin/bash\n#SBATCH --cpus-per-task=8\nsrun mkdir -p /tmp/$USER/work\nsleep infinity\n"
    assert found(text, "HPC527") == []
    assert found(text.replace("sleep infinity", "sleep 5"), "HPC527") != []


def test_hpc133_follows_a_local_rank_name_in_a_written_wrapper():
    text = ("#!/bin/bash\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\ncat > w.sh <<'END'\n#!/bin/bash\n"
            "LOCAL_RANK=$SLURM_LOCALID\nexport CUDA_VISIBLE_DEVICES=$LOCAL_RANK\nexec \"$@\"\nEND\nchmod +x w.sh\n"
            "srun ./w.sh python t.py\n")
    [(line, message)] = found(text, "HPC133")
    assert line == 11 and "CUDA_VISIBLE_DEVICES=$LOCAL_RANK in ./w.sh (written on line 4)" in message


@pytest.mark.parametrize(("body", "delimiter", "asked", "reported"), [
    ("export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID", "EOF", "#SBATCH --gpus-per-node=8", True),
    ("export RANK=${SLURM_PROCID}", "EOF", "#SBATCH --gpus-per-node=8", True),
    ("export ROCR_VISIBLE_DEVICES=\\$SLURM_LOCALID", "EOF", "#SBATCH --gpus-per-node=8", False),   # escaped
    ("export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID", "'EOF'", "#SBATCH --gpus-per-node=8", False),   # quoted delimiter
    ("export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK", "EOF", "#SBATCH --gpus-per-node=8", False),    # the same for all
])
def test_hpc502_a_per_task_variable_the_batch_shell_fills_into_a_written_wrapper(body, delimiter, asked, reported):
    [(line, message)] = found(_select_gpu(body, delimiter, asked), "HPC502") or [(0, "")]
    assert (line == 6 and "written to ./select_gpu" in message and "line 12" in message) is reported


@pytest.mark.parametrize(("variable", "library"), [("GLOO_SOCKET_IFNAME", "Gloo"), ("TP_SOCKET_IFNAME", "TensorPipe"),
                                                   ("NCCL_SOCKET_IFNAME", "NCCL")])
def test_hpc131_a_loopback_interface_for_gloo_or_tensorpipe_in_a_multi_node_job(variable, library):
    text = (MULTI + f"export {variable}=lo\nhead=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
            "srun --ntasks-per-node=1 torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
            "--rdzv-endpoint=\"$head:29500\" --rdzv-id=\"$SLURM_JOB_ID\" train.py\n")
    [(line, message)] = found(text, "HPC131")
    assert line == 6 and f"{variable}=lo makes {library} talk over loopback" in message
    assert found(text.replace("MULTI", "").replace("--nodes=2", "--nodes=1"), "HPC131") == []


# --- HPC103 and HPC116 for SGLang over several nodes (the helper audit of LLM jobs, H3) ----------------------------

SGL = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n#SBATCH -t 01:00:00\n"
       "head=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n")


def test_an_sglang_server_on_several_nodes_with_one_fixed_node_rank():
    text = SGL + 'srun python -m sglang.launch_server --model-path m --tp 8 --nnodes 2 --node-rank 0 --dist-init-addr "$head:5000"\n'
    [(line, message)] = found(text, "HPC116")
    assert line == 7 and "each with --node-rank 0" in message and "$SLURM_NODEID" in message


def test_an_sglang_server_of_several_nodes_meeting_at_localhost():
    text = (SGL + "srun bash -c 'python -m sglang.launch_server --model-path m --tp 8 --nnodes 2 "
            "--node-rank $SLURM_NODEID --dist-init-addr 127.0.0.1:5000'\n")
    [(line, message)] = found(text, "HPC103")
    assert line == 7 and "--dist-init-addr 127.0.0.1:5000" in message and found(text, "HPC116") == []


@pytest.mark.parametrize("step", [
    "srun bash -c 'python -m sglang.launch_server --model-path m --tp 8 --nnodes 2 --node-rank $SLURM_NODEID "
    "--dist-init-addr '\"$head\"':5000'",
    # one server placed on each node, each with its own rank
    'srun -N1 -n1 -w "$head" python -m sglang.launch_server --model-path m --tp 8 --nnodes 2 --node-rank 0 '
    '--dist-init-addr "$head:5000" &\nsleep 5\nwait',
    # one node: localhost is right
    "python -m sglang.launch_server --model-path m --tp 4 --dist-init-addr 127.0.0.1:5000",
])
def test_sglang_with_each_node_its_rank_or_on_one_node_is_left_alone(step):
    text = SGL + step + "\n"
    assert found(text, "HPC116") == [] and found(text, "HPC103") == []


@pytest.mark.parametrize(("head_step", "reported"), [
    ('apptainer exec /s/vllm.sif ray start --head --port=6379 --block', True),
    ('apptainer exec /s/vllm.sif ray start --head --port=6379 --num-gpus=0 --block', False),   # a CPU-only head
    ('apptainer exec --nv /s/vllm.sif ray start --head --port=6379 --block', False),
])
def test_a_ray_node_started_in_a_container_without_the_gpu_flag(head_step, reported):
    text = (SGL + f'srun -N1 -n1 -w "$head" {head_step} &\nsleep 10\n'
            'srun -N1 -n1 --exclude="$head" apptainer exec --nv /s/vllm.sif ray start --address="$head:6379" --block &\n'
            "sleep 10\napptainer exec --nv /s/vllm.sif vllm serve m --tensor-parallel-size 4 --pipeline-parallel-size 2\n")
    lines = [line for line, message in found(text, "HPC201") if "ray start offers the GPUs" in message]
    assert lines == ([7] if reported else [])


# --- HPC551 ---------------------------------------------------------------------------------------------------------

RAY = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH -t 01:00:00\n" \
      "nodes=( $(scontrol show hostnames \"$SLURM_JOB_NODELIST\") )\n"


@pytest.mark.parametrize(("head", "worker", "says"), [
    ("ray start --head --port=6379 --block", 'ray start --address="${nodes[0]}:6380" --block', "joins at port 6380"),
    ("ray start --head --block", 'ray start --address "${nodes[0]}:6380" --block', "listens on 6379"),  # the default
    ("ray start --head --port 7000 --block", "bash -c 'ray start --address=$0:6379 --block' \"${nodes[0]}\"",
     "listens on 7000"),
])
def test_a_ray_worker_joins_at_another_port_than_the_head(head, worker, says):
    text = (RAY + f'srun -N1 -n1 -w "${{nodes[0]}}" --overlap {head} &\nsleep 10\n'
            f'srun -N1 -n1 -w "${{nodes[1]}}" --overlap {worker} &\nsleep 10\npython driver.py\n')
    [(line, message)] = found(text, "HPC551")
    assert line == 8 and says in message


@pytest.mark.parametrize(("head", "worker"), [
    ("ray start --head --port=6379 --block", 'ray start --address="${nodes[0]}:6379" --block'),
    ("ray start --head --block", 'ray start --address="${nodes[0]}:6379" --block'),
    ('ray start --head --port="$port" --block', 'ray start --address="${nodes[0]}:$port" --block'),
    ("ray start --head --port=6379 --block", 'ray start --address="$RAY_ADDRESS" --block'),   # not told here
])
def test_a_ray_worker_at_the_head_port_or_an_untold_one_is_left_alone(head, worker):
    text = (RAY + f'port=6379\nsrun -N1 -n1 -w "${{nodes[0]}}" --overlap {head} &\nsleep 10\n'
            f'srun -N1 -n1 -w "${{nodes[1]}}" --overlap {worker} &\nsleep 10\npython driver.py\n')
    assert found(text, "HPC551") == []


# --- the helper audit of the command line (H2): a huge array, nodes 0, long scripts ----------------------------------

def test_an_array_index_above_what_any_slurm_takes_is_refused_without_listing_the_ids():
    from hpcwidgets.spec.slurm import MAX_ARRAY_INDEX, array_problem, array_task_ids
    assert "above what any Slurm takes" in array_problem("0-99999999999999")
    assert array_task_ids("0-99999999999999") is None
    assert array_problem(f"0-{MAX_ARRAY_INDEX}") == ""
    ids = array_task_ids(f"0-{MAX_ARRAY_INDEX}:2,7%4")   # two million ids, held as ranges
    assert len(ids) == MAX_ARRAY_INDEX // 2 + 2 and ids[0] == 0 and ids[-1] == 7 and ids[-2] == MAX_ARRAY_INDEX
    assert max(ids) == MAX_ARRAY_INDEX and list(array_task_ids("0-6:2,9")) == [0, 2, 4, 6, 9]
    assert [line for line, _ in found("#!/bin/bash\n#SBATCH --array=0-99999999999999\npython t.py\n", "HPC304")] == [2]


def test_the_command_line_refuses_a_huge_array_before_it_writes_anything(tmp_path):
    import subprocess
    import sys
    out = tmp_path / "job.sh"
    proc = subprocess.run([sys.executable, "-m", "hpcwidgets", "sbatch", "--array", "0-99999999999999", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "above what any Slurm takes" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(("nnodes", "says"), [("0", "at least one node"), ("0:4", "at least one node"),
                                              ("3:1", "write 1:3")])
def test_torchrun_refuses_no_nodes_and_a_range_that_counts_down(nnodes, says):
    from hpcwidgets.spec.torchrun import Torchrun
    problems = [p.message for p in Torchrun(nnodes=nnodes, rdzv_backend="c10d", rdzv_endpoint="h:29500",
                                            script="t.py").problems() if p.field == "nnodes"]
    assert len(problems) == 1 and says in problems[0]


def test_a_long_script_reads_back_and_lints_as_written():
    """Thousands of lines (equal comment lines, one step per line): the layout groups and the command lookups are
    worked out per line, not per line pair; what comes back is the script itself."""
    import hpcwidgets as hw
    text = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -t 10\n" + "# c\n" * 3000 + "srun echo a\n" * 1500 + "srun python t.py\n"
    assert hw.render(hw.parse_script(text), validate=False) == text
    assert all(f.code != "HPC000" for f in lint(text))


def test_hpc550_a_step_that_sleeps_for_a_time_holds_the_job_too():
    text = HOLD + 'echo "attach: srun --jobid=$SLURM_JOB_ID --pty bash"\nsrun sleep 3600\n'
    assert [line for line, _ in found(text, "HPC550")] == [5]
