"""Session 29: a module with its own Python loaded after an environment is activated (HPC546), and ml load read as
module load."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse.script import read_script

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --gres=gpu:1\n"


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text) if f.code == code]


# --- HPC546 ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "line", "says"), [
    ("source $HOME/envs/torch/bin/activate\nml load cuda/12.1 python/3.11.5\nsrun python train.py\n", 5,
     "python/3.11.5 comes after the environment activated on line 4"),
    ('. "$SCRATCH/venv/bin/activate"\nmodule load Python/3.11.3-GCCcore-12.3.0\npip install -e .\n', 5,
     "pip on line 6"),
    ("module load anaconda3\neval \"$(conda shell.bash hook)\"\nconda activate ml\n"
     "module load PyTorch/2.1.2-foss-2023a-CUDA-12.1.1\npython eval.py\n", 7, "activated on line 6"),
    ("source activate ml\nmodule load cray-python\nsrun --ntasks=1 python3 train.py\n", 5, "python3 on line 6"),
    ("micromamba activate ml\nmodule load py-torch/2.3.1\ntime python train.py\n", 5, "python on line 6"),
])
def test_a_python_module_loaded_after_the_activation_shadows_the_environment(body, line, says):
    [(at, message)] = found(HEAD + body, "HPC546")
    assert at == line and says in message and "load the modules first" in message


@pytest.mark.parametrize("body", [
    # the usual order: modules, then the environment
    "module load python/3.11 cuda/12.1\nsource ~/venv/bin/activate\npython train.py\n",
    # loaded before the activation, so loading it again leaves PATH alone
    "module load python/3.11\nsource ~/venv/bin/activate\nmodule load python/3.11 cuda\npython train.py\n",
    # a module without a Python of its own
    "source ~/venv/bin/activate\nmodule load cuda/12.1 cudnn nccl\npython train.py\n",
    # activated again after the load
    "source ~/venv/bin/activate\nmodule load python/3.11\nsource ~/venv/bin/activate\npython train.py\n",
    # deactivated first
    "source ~/venv/bin/activate\npip list\ndeactivate\nmodule load python/3.11\npython other.py\n",
    # the environment's own program, named by its path
    "source ~/venv/bin/activate\nmodule load python/3.11\n~/venv/bin/python train.py\n",
    # no python after the load
    "source ~/venv/bin/activate\nmodule load python/3.11\n./run.sh\n",
    # a container's python is not the host's PATH
    "source ~/venv/bin/activate\nmodule load python/3.11 apptainer\napptainer exec --nv img.sif python train.py\n",
])
def test_no_finding_when_the_environment_comes_first_on_path(body):
    assert found(HEAD + body, "HPC546") == []


def test_ml_load_names_the_modules_after_load():
    parsed = read_script(HEAD + "ml load python/3.11 cuda\nml gcc\nmodule add openmpi\n")
    assert [name for name, _ in parsed.modules] == ["python/3.11", "cuda", "gcc", "openmpi"]


# --- session 29's audit: false positives removed ---------------------------------------------------------------------

MULTI = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n#SBATCH --time=01:00:00\n"


def test_podman_hpc_env_name_passes_the_callers_variable_on():
    text = MULTI + ('export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
                    "srun podman-hpc run --rm --gpu -e MASTER_ADDR img:1.0 python train.py\n")
    assert found(text, "HPC535") == []
    # a name written where a value goes is still one
    assert found(text.replace("-e MASTER_ADDR img:1.0 python train.py", "img:1.0 python train.py --out SCRATCH/x"),
                 "HPC535")


@pytest.mark.parametrize(("value", "reported"), [
    ('"/tmp/$(whoami)-miopen-cache-$SLURM_NODEID"', False),
    ("/dev/shm/cache-$SLURM_NODEID", False),
    ('"$SLURM_TMPDIR/run-$SLURM_NODEID"', False),
    ("$SCRATCH/run-$SLURM_NODEID", True),        # shared storage: every node writes the same folder
    ("/tmp/cache-$SLURM_LOCALID", True),         # the tasks of a node share /tmp
])
def test_nodeid_in_a_node_local_folder_names_each_nodes_own(value, reported):
    text = MULTI + f"export CACHE={value}\nsrun python train.py\n"
    assert bool(found(text, "HPC502")) is reported


@pytest.mark.parametrize(("path", "reported"), [
    ("~/scratch/containers/x.sif", False),
    ("$HOME/projects/def-alice/images/x.sif", False),
    ("/home/alice/nobackup/x.sif", False),
    ("$HOME/images/x.sif", True),
    ("/home/alice/containers/x.sif", True),
])
def test_home_folders_linked_to_other_storage_are_not_the_home_quota(path, reported):
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv {path} python train.py\n"
    assert bool(found(text, "HPC206")) is reported


def test_a_container_behind_a_users_wrapper_script_is_checked():
    text = "#!/bin/bash\n#SBATCH --gres=gpu:a100:1\nsrun ./wrap.sh apptainer exec img.sif python train.py\n"
    [(line, message)] = found(text, "HPC201")
    assert line == 3 and "--nv" in message
    assert found(text.replace("./wrap.sh", "bash select_gpu.sh"), "HPC201")
    assert not found(text.replace("apptainer exec", "apptainer exec --nv"), "HPC201")


def test_a_job_that_runs_no_container_may_pull_unguarded():
    build = ("#!/bin/bash\n#SBATCH --time=00:45:00\nexport APPTAINER_CACHEDIR=$SCRATCH/cache\n"
             "apptainer build \"$SCRATCH/pt.sif\" docker://nvcr.io/nvidia/pytorch:24.05-py3\n")
    assert found(build, "HPC208") == []
    assert found(build + "apptainer exec --nv \"$SCRATCH/pt.sif\" python train.py\n", "HPC208")


def test_nccl_ib_disable_is_left_alone_when_traffic_goes_through_libfabric():
    text = MULTI + "export NCCL_IB_DISABLE=1\n{}srun python train.py\n"
    assert found(text.format(""), "HPC132")
    assert not found(text.format('export FI_PROVIDER="efa"\n'), "HPC132")
    assert not found(text.format("export NCCL_NET='AWS Libfabric'\n"), "HPC132")


@pytest.mark.parametrize(("signal", "ends"), [("TERM", True), ("SIGINT", True), ("9", True), ("USR1", False)])
def test_scancel_with_a_signal_that_ends_the_server_stops_the_wait_finding(signal, ends):
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"
            "srun vllm serve facebook/opt-125m --port 8000 &\npid=$!\n"
            "until curl -sf localhost:8000/health; do sleep 10; done\npython client.py\n"
            f'scancel --signal={signal} "${{SLURM_JOB_ID}}.0"\nwait $pid\n')
    assert bool(found(text, "HPC539")) is not ends


# --- Jupyter ---------------------------------------------------------------------------------------------------------

JOB = '#!/bin/bash\n#SBATCH --time=02:00:00\nchmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\n'


def test_a_tunnel_printed_with_printf_is_read_with_its_arguments():
    text = JOB + ("node=$(hostname -s); port=$(shuf -i 8000-9999 -n 1)\n"
                  "printf 'ssh -N -L %s:%s:%s login.example.edu\\n' \"$port\" \"$node\" \"$port\"\n"
                  'jupyter lab --no-browser --ip="$node" --port={} --ServerApp.port_retries=0\n')
    assert found(text.format('"$port"'), "HPC608") == []
    [(line, message)] = found(text.format("8888"), "HPC608")
    assert line == 6 and "port $port on the node" in message


def test_a_config_file_may_set_the_servers_address_and_port():
    text = JOB + ('node=$(hostname -s); cfg=$(mktemp --suffix=.py)\n'
                  "printf 'c.ServerApp.ip = \"%s\"\\nc.ServerApp.port = 9400\\n' \"$node\" > \"$cfg\"\n"
                  'echo "ssh -N -L 9400:${node}:9400 login.example.edu"\n'
                  'jupyter lab --no-browser --config="$cfg" --ServerApp.port_retries=0\n')
    assert found(text, "HPC608") == []


@pytest.mark.parametrize(("tunnel", "reported"), [
    ('echo "ssh -N -L ${port}:localhost:${port} ${USER}@login.example.edu"', True),
    ('echo "ssh -N -J ${USER}@login.example.edu -L ${port}:localhost:${port} $node"', False),
    ('echo "ssh -N -L ${port}:${node}:${port} ${USER}@login.example.edu"', False),
    ('echo "ssh -N -L ${port}:localhost:${port} $(hostname)"', False),
])
def test_a_tunnel_to_localhost_through_the_login_node_misses_the_compute_node(tunnel, reported):
    text = JOB + ("node=$(hostname -s); port=$(shuf -i 8000-9999 -n 1)\n" + tunnel + "\n"
                  'jupyter lab --no-browser --ip="$node" --port="$port" --ServerApp.port_retries=0\n')
    hits = found(text, "HPC608")
    assert bool(hits) is reported
    if reported:
        assert hits[0][0] == 5 and "login node" in hits[0][1] and "-J" in hits[0][1]


def test_only_a_chmod_of_the_log_makes_the_token_private():
    text = ("#!/bin/bash\n#SBATCH --time=02:00:00\n#SBATCH --output=/project/shared/logs/jlab-%j.log\n"
            "export JUPYTER_RUNTIME_DIR=/tmp/jrt-$SLURM_JOB_ID\n{}\n"
            'jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0\n')
    assert found(text.format('mkdir -p "$JUPYTER_RUNTIME_DIR"; chmod 700 "$JUPYTER_RUNTIME_DIR"'), "HPC607")
    assert found(text.format("chmod 600 notes.txt"), "HPC607")
    assert not found(text.format('chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"'), "HPC607")
    assert not found(text.format('chmod 600 "/project/shared/logs/jlab-$SLURM_JOB_ID.log"'), "HPC607")


def test_cleanenv_keeps_the_saved_jupyter_token_out_and_says_not_to_use_env():
    text = ("#!/bin/bash\n#SBATCH --time=02:00:00\nexport JUPYTER_TOKEN=$(openssl rand -hex 24)\n"
            "apptainer exec --cleanenv lab.sif jupyter lab --no-browser --ip=\"$(hostname -s)\" --port=8888 "
            "--ServerApp.port_retries=0\n")
    [(line, message)] = found(text, "HPC227")
    assert line == 4 and "export APPTAINERENV_JUPYTER_TOKEN" in message and "not --env" in message


@pytest.mark.parametrize(("command", "reported"), [
    ('code-server --auth none --bind-addr "0.0.0.0:8443" .', True),
    ("code-server --auth=none .", True),
    ("code-server --auth password --bind-addr \"$(hostname -s):8443\" .", False),
    ("apptainer exec rstudio.sif rserver --www-port 8787 --auth-none=1", True),
    ("apptainer exec rstudio.sif rserver --www-port 8787 --auth-none=0 --auth-pam-helper-path=pam-helper", False),
])
def test_web_ides_without_their_login_are_reported(command, reported):
    assert bool(found("#!/bin/bash\n#SBATCH --time=02:00:00\n" + command + "\n", "HPC603")) is reported


# --- new rules -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("driver", "line", "use"), [
    ("jid=$(sbatch train.sbatch)\nsbatch --dependency=afterok:$jid eval.sbatch\n", 2, "--dependency on line 3"),
    ("J=`sbatch -p gpu a.sh`\nscancel ${J}\n", 2, "scancel on line 3"),
    ('J="$(sbatch a.sh)"\nsbatch -d afterany:"$J" b.sh\n', 2, "--dependency on line 3"),
])
def test_a_job_id_kept_from_sbatch_without_parsable_is_reported(driver, line, use):
    [(at, message)] = found("#!/bin/bash\n" + driver, "HPC547")
    assert at == line and use in message and "--parsable" in message


@pytest.mark.parametrize("driver", [
    "J=$(sbatch --parsable a.sh)\nsbatch -d afterany:$J b.sh\n",
    "J=$(sbatch a.sh)\nJ=${J##* }\nsbatch -d afterany:$J b.sh\n",
    "J=$(sbatch a.sh | awk '{print $4}')\nsbatch -d afterany:$J b.sh\n",
    'J=$(sbatch a.sh)\necho "$J" >> jobs.txt\n',
])
def test_a_job_id_cut_out_or_never_used_as_one_is_left_alone(driver):
    assert found("#!/bin/bash\n" + driver, "HPC547") == []


def test_ray_start_under_srun_needs_block():
    text = MULTI + ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)\n'
                    'srun -N1 -n1 -w "$head" ray start --head --port=6379{}\npython driver.py\n')
    [(line, message)] = found(text.format(""), "HPC548")
    assert line == 7 and "--block" in message
    assert found(text.format(" --block &"), "HPC548") == []
    # in the batch shell, ray start's processes last as long as the script
    assert found(text.format("").replace('srun -N1 -n1 -w "$head" ', ""), "HPC548") == []


def lint_build(text: str, path: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, path=path) if f.code == code]


def test_a_global_arg_is_empty_in_a_stage_that_does_not_declare_it():
    text = ("# versions\nARG TORCH_VERSION=2.3.1\nARG BASE=python:3.11-slim\nFROM ${BASE} AS build\n"
            "RUN pip install --no-cache-dir torch==${TORCH_VERSION}\nFROM ${BASE}\nARG TORCH_VERSION\n"
            "RUN echo $TORCH_VERSION > /version\n")
    [(line, message)] = lint_build(text, "Dockerfile", "HPC713")
    assert line == 5 and "ARG TORCH_VERSION after this stage's FROM" in message
    # a stage built on a stage that set it with ENV sees it
    text2 = "ARG V=1\nFROM alpine:3.19 AS a\nARG V\nENV V=$V\nFROM a\nRUN echo $V\n"
    assert lint_build(text2, "Dockerfile", "HPC713") == []


@pytest.mark.parametrize(("run", "says"), [
    ("RUN export PATH=/opt/conda/bin:$PATH", "ENV NAME=value"),
    ("RUN cd /opt/app", "WORKDIR"),
    ("RUN . /opt/venv/bin/activate", "ENV PATH=/opt/venv/bin:$PATH"),
    ("RUN conda activate ml", "ENV PATH"),
])
def test_a_run_that_only_sets_up_its_own_shell_is_reported(run, says):
    text = f"FROM python:3.11-slim\n{run}\nRUN python -V\n"
    [(line, message)] = lint_build(text, "Dockerfile", "HPC714")
    assert line == 2 and says in message


def test_a_run_that_sets_up_and_works_in_one_shell_is_fine():
    text = "FROM python:3.11-slim\nRUN cd /opt && . venv/bin/activate && pip install numpy==1.26.4\n"
    assert lint_build(text, "Dockerfile", "HPC714") == []
    # in a definition file the section is one shell
    deffile = "Bootstrap: docker\nFrom: python:3.11-slim\n\n%post\n    export X=1\n"
    assert lint_build(deffile, "x.def", "HPC714") == []


def test_a_build_argument_without_a_default_is_reported_with_the_name_meant():
    text = ("# {{ NOT_THIS }} in a comment\nBootstrap: docker\nFrom: nvidia/cuda:{{ CUDA_VER }}-runtime-ubuntu22.04\n\n"
            "%arguments\n    CUDA_VERSION=12.4.1\n\n%post\n    echo {{ CUDA_VERSION }} {{ TAG }}\n")
    hits = lint_build(text, "x.def", "HPC715")
    assert [line for line, _ in hits] == [3, 9]
    assert "write {{ CUDA_VERSION }}" in hits[0][1] and "--build-arg TAG=" in hits[1][1]


def test_an_earlier_stages_home_copied_elsewhere_is_not_a_home_install():
    stage = "FROM python:3.11-slim AS builder\nRUN pip install --user --no-cache-dir numpy==1.26.4\n\nFROM python:3.11-slim\n"
    assert lint_build(stage + "COPY --from=builder /root/.local /usr/local\n", "Dockerfile", "HPC704") == []
    assert lint_build(stage + "COPY --from=builder /root/.local /root/.local\n", "Dockerfile", "HPC704")
    deffile = ("Bootstrap: docker\nFrom: python:3.11-slim\nStage: build\n\n%post\n    pip install --user numpy==1.26.4\n\n"
               "Bootstrap: docker\nFrom: python:3.11-slim\nStage: final\n\n%files from build\n    /root/.local {}\n")
    assert lint_build(deffile.format("/usr/local"), "x.def", "HPC704") == []
    assert lint_build(deffile.format(""), "x.def", "HPC704")


def test_a_variable_a_base_image_sets_is_not_empty_in_post():
    text = ("Bootstrap: docker\nFrom: mambaorg/micromamba:1.5.8-jammy\n\n%post\n    ls \"$MAMBA_ROOT_PREFIX/bin\"\n\n"
            "%environment\n    export MAMBA_ROOT_PREFIX=/opt/conda\n")
    assert lint_build(text, "x.def", "HPC708") == []


@pytest.mark.parametrize(("text", "path", "reported"), [
    ("Bootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    apt-get update && apt-get install -y tzdata python3\n",
     "x.def", True),
    ("Bootstrap: docker\nFrom: ubuntu:22.04\n\n%environment\n    export DEBIAN_FRONTEND=noninteractive\n\n%post\n"
     "    apt-get install -y tzdata\n", "x.def", True),
    ("Bootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    export DEBIAN_FRONTEND=noninteractive\n"
     "    apt-get install -y tzdata\n", "x.def", False),
    ("FROM ubuntu:22.04\nARG DEBIAN_FRONTEND=noninteractive\nRUN apt-get update && apt-get install -y tzdata\n",
     "Dockerfile", False),
    ("FROM ubuntu:22.04\nRUN DEBIAN_FRONTEND=noninteractive apt-get install -y tzdata\n", "Dockerfile", False),
    ("FROM ubuntu:22.04\nENV TZ=Etc/UTC\nRUN apt-get update && apt-get install -y tzdata\n", "Dockerfile", False),
    ("FROM ubuntu:22.04\nRUN apt-get update && apt-get install -y tzdata\n", "Dockerfile", True),
    ("FROM ubuntu:22.04\nRUN apt-get update && apt-get install -y git\n", "Dockerfile", False),
])
def test_tzdata_asks_its_question_without_the_noninteractive_front_end(text, path, reported):
    hits = [m for _, m in lint_build(text, path, "HPC705") if "tzdata" in m]
    assert bool(hits) is reported
    if reported and "%environment" in text:
        assert "read only when the container runs" in hits[0]


def test_a_step_that_copies_files_into_place_on_each_node_needs_no_more_cpus():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=8\n"
            "srun ch-fromhost --nvidia /var/tmp/img\nsrun tar -xf data.tar -C /tmp\n"
            "srun ch-run /var/tmp/img -- python train.py\n")
    assert [line for line, _ in found(text, "HPC309")] == [7]


# --- session 29's second round of audits: arrays and checkpoints, MPI and Charliecloud ---------------------------

TRAP = "#!/bin/bash\n#SBATCH --time=04:00:00\n#SBATCH --signal=B:USR1@300\n"


@pytest.mark.parametrize(("body", "reported"), [
    # the handler waits for the step itself: the script cannot end before the step has saved
    ('on_usr1() { touch STOP; wait "$pid"; }\ntrap on_usr1 USR1\nsrun python train.py &\npid=$!\nwait\n', False),
    # a program the batch shell starts itself dies with the job as the script ends
    ("trap 'kill -USR1 \"$pid\"' USR1\npython train.py &\npid=$!\nwait \"$pid\"\n", True),
    # a resubmission after the wait does not give the step its time
    ("trap 'kill -USR1 \"$pid\"' USR1\nsrun python train.py &\npid=$!\nwait \"$pid\"\n"
     "if [ ! -f DONE ]; then\n  sbatch --dependency=afterany:$SLURM_JOB_ID job.sh\nfi\n", True),
    # a loop that polls the step waits for it
    ("trap 'kill -USR1 \"$pid\"' USR1\nsrun python train.py &\npid=$!\nwait \"$pid\"\n"
     "while kill -0 \"$pid\" 2>/dev/null; do wait \"$pid\"; done\n", False),
])
def test_the_one_wait_after_a_checkpoint_signal(body, reported):
    assert bool(found(TRAP + body, "HPC529")) is reported


def test_a_clean_container_leaves_slurms_variables_out_of_its_own_shell():
    text = ("#!/bin/bash\n#SBATCH --array=0-9\n#SBATCH --output=cv_%A_%a.out\n"
            "apptainer exec {}img.sif bash -c 'python train_fold.py --fold $SLURM_ARRAY_TASK_ID'\n")
    [(line, message)] = found(text.format("--cleanenv "), "HPC223")
    assert line == 4 and "$SLURM_ARRAY_TASK_ID" in message and "--env SLURM_ARRAY_TASK_ID=" in message
    assert found(text.format(""), "HPC223") == []
    assert found(text.format("--cleanenv --env SLURM_ARRAY_TASK_ID=$SLURM_ARRAY_TASK_ID "), "HPC223") == []
    # in double quotes the batch shell fills it in before the container starts
    assert found(text.format("--cleanenv ").replace("'", '"'), "HPC223") == []


def test_ch_run_unsetting_every_variable_under_srun_loses_the_ranks():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=20\nmodule load openmpi/4.1.5\n"
            "srun --mpi=pmix ch-run --unset-env={} /var/tmp/img -- ./solver\n")
    [(line, message)] = found(text.format("'*'"), "HPC223")
    assert line == 5 and "PMI_*" in message and "40 tasks" in message
    assert found(text.format("HISTFILE"), "HPC223") == []


@pytest.mark.parametrize(("lookup", "reported"), [
    ('sed -n "$((SLURM_ARRAY_TASK_ID))p" params.txt', True),
    ('sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" params.txt', False),
    ("awk -v n=\"$SLURM_ARRAY_TASK_ID\" 'NR == n {print; exit}' list.txt", True),
])
def test_a_zero_based_array_reading_lines_from_one(lookup, reported):
    text = f"#!/bin/bash\n#SBATCH --array=0-11\n#SBATCH --output=a_%A_%a.out\nLINE=$({lookup})\npython run.py $LINE\n"
    hits = found(text, "HPC508")
    assert bool(hits) is reported
    if hits and "awk" in lookup:
        assert "sed" not in hits[0][1]


def test_mpirun_in_the_containers_bash_c_script_spans_nodes_from_inside():
    text = ("#!/bin/bash\n#SBATCH --nodes=3\n#SBATCH --ntasks-per-node=24\n"
            'singularity exec of.sif bash -c "source /opt/openfoam/etc/bashrc && mpirun -np 72 pimpleFoam -parallel"\n')
    [(line, message)] = found(text, "HPC214")
    assert line == 4 and message.startswith("mpirun runs inside the container")


@pytest.mark.parametrize(("value", "reported"), [("$(nproc)", True), ("$SLURM_CPUS_ON_NODE", True),
                                                 ("$SLURM_CPUS_PER_TASK", False), ("8", False)])
def test_threads_counted_by_the_batch_shell_oversubscribe_each_task(value, reported):
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=16\n#SBATCH --cpus-per-task=8\n"
            f"export OMP_NUM_THREADS={value}\nsrun --cpus-per-task=8 ./solver\n")
    assert bool(found(text, "HPC323")) is reported


def test_a_function_that_runs_srun_on_what_its_caller_names_is_not_judged_by_hpc309():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=8\n"
            'pernode() { srun --ntasks-per-node=1 "$@"; }\npernode tar -xf img.tar -C /tmp\n'
            "srun --ntasks-per-node=1 ch-convert img.tar.gz /tmp/img\n")
    assert found(text, "HPC309") == []


# --- read-back: the text as the readers take it ----------------------------------------------------------------------

def test_a_windows_script_reads_without_carriage_returns_in_its_words():
    import hpcwidgets as hw
    text = "#!/bin/bash\r\n#SBATCH -t 10\r\nmodule load gcc\r\npython train.py\r\n"
    model = hw.parse_script(text)
    assert "\r" not in hw.render(model, validate=False)
    assert hw.render(model, validate=False) == text.replace("\r\n", "\n")
    from hpcwidgets.parse import parse_job
    assert "\r" not in "".join(map(str, parse_job(text).modules))


def test_a_byte_order_mark_is_dropped_so_an_edit_stays_below_the_shebang():
    import hpcwidgets as hw
    model = hw.parse_script("\ufeff#!/bin/bash\n#SBATCH -t 10\npython train.py\n")
    assert str(model.job.time) == "10"
    assert hw.render(model.replace(job=model.job.replace(time="20")), validate=False) == \
        "#!/bin/bash\n#SBATCH -t 20\npython train.py\n"


def test_a_script_handed_to_another_language_is_refused_with_the_reason():
    import hpcwidgets as hw
    from hpcwidgets.errors import ParseError
    text = '#!/bin/bash\n#SBATCH -t 10\nexec julia "$0" "$@"\nprintln(sum([1, 2]))\nf(x) = (x + 1)\n'
    with pytest.raises(ParseError, match="not shell") as info:
        hw.parse_script(text)
    assert info.value.line == 3 and "hpcwidgets lint" in str(info.value)
    with pytest.raises(ParseError, match="not shell"):
        __import__("hpcwidgets.parse", fromlist=["parse_job"]).parse_job(text)


def test_from_reads_a_job_script_that_lacks_only_its_shebang(tmp_path, capsys):
    from hpcwidgets.cli import main
    path = tmp_path / "job.sh"
    path.write_text("# my training job\n#SBATCH -t 10\npython train.py\n")
    main(["sbatch", "--from", str(path)])
    out, err = capsys.readouterr()
    assert out.startswith("# my training job\n#SBATCH -t 10\n") and "not valid JSON" not in err
    assert "HPC315" in err and "#!/bin/bash" in err


@pytest.mark.parametrize(("option", "says"), [
    ("--epochs 10", "unrecognized option '--epochs'"),
    ("-in in.melt", "stops at -i (\"invalid option -- 'i'\")"),
])
def test_ch_run_refuses_a_programs_option_as_argp_does(option, says):
    text = f"#!/bin/bash\n#SBATCH --ntasks=1\nsrun ch-run /scratch/img.sqfs lmp {option}\n"
    [(_, message)] = found(text, "HPC239")
    assert says in message


@pytest.mark.parametrize(("handler", "reported"), [
    ("kill -USR1 \"$pid\"", True), ("touch STOP", True),
    ("kill -TERM \"$pid\"", False),          # ends a program that does not catch it anyway
    ("echo cleaning up", False),             # a clean-up at the end, on purpose
])
def test_a_trap_that_asks_a_batch_shell_program_to_checkpoint(handler, reported):
    text = TRAP + f"trap '{handler}' USR1\npython train.py &\npid=$!\nwait\n"
    assert bool(found(text, "HPC529")) is reported


# --- read-back edits keep the script's spelling (session 29's read-back audit) -------------------------------------

def _edited(text: str, **changes: object) -> str:
    import hpcwidgets as hw
    model = hw.parse_script(text)
    for part, fields in changes.items():
        model = model.replace(**{part: getattr(model, part).replace(**fields)})
    return hw.render(model, validate=False)


@pytest.mark.parametrize(("line", "fields", "written"), [
    ("#SBATCH -N 1 -n 4 -t 01:00:00", {"mem": "8G"}, "#SBATCH -N 1 -n 4 -t 01:00:00\n#SBATCH --mem=8G"),
    ("#SBATCH -J a -N 1  # c", {"partition": "gpu"}, "#SBATCH -J a -N 1  # c\n#SBATCH --partition=gpu"),
])
def test_a_directive_added_to_a_line_of_several_options_goes_on_a_line_of_its_own(line, fields, written):
    text = f"#!/bin/bash\n{line}\nsrun python train.py\n"
    assert _edited(text, job=fields) == f"#!/bin/bash\n{written}\nsrun python train.py\n"


@pytest.mark.parametrize(("step", "part", "fields", "now"), [
    ("srun -N1 -n1 python train.py", "srun", {"ntasks": 8}, "srun -N1 -n8 python train.py"),
    ("srun -N 1 -n 1 python train.py", "srun", {"ntasks": 8}, "srun -N 1 -n 8 python train.py"),
    ("srun -c 4 python train.py", "srun", {"cpus_per_task": 8}, "srun -c 8 python train.py"),
    ("srun -n2 -l python train.py", "srun", {"ntasks": 8}, "srun -n8 -l python train.py"),
    ("ch-run -c /mnt/0 $IMG -- python train.py", "container", {"cd": "/mnt/1"}, "ch-run -c /mnt/1 $IMG -- python train.py"),
])
def test_an_edited_step_option_keeps_its_one_letter_spelling(step, part, fields, now):
    head = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -t 10\nIMG=/var/tmp/img\n"
    assert _edited(head + step + "\n", **{part: fields}) == head + now + "\n"


def test_a_gpu_count_edit_leaves_a_flag_held_in_a_variable_alone(tmp_path, capsys):
    from hpcwidgets.cli import main
    path = tmp_path / "job.sh"
    text = ('#!/bin/bash\n#SBATCH --gres=gpu:1\nOPTS=(--nv --bind /data)\n'
            'srun apptainer exec "${OPTS[@]}" img.sif python train.py\n')
    path.write_text(text)
    main(["workflow", "--from", str(path), "--set", "job.gpus_per_node=2"])
    out, _ = capsys.readouterr()
    assert out == text.replace("gpu:1", "gpu:2")


def test_a_module_taken_out_takes_its_line_alone_when_it_has_a_comment():
    text = "#!/bin/bash\n#SBATCH -t 10\nmodule load gcc # compiler\nmodule load cuda\npython train.py\n"
    assert _edited(text, job={"modules": ("cuda",)}) == "#!/bin/bash\n#SBATCH -t 10\nmodule load cuda\npython train.py\n"
