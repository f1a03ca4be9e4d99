"""Session 20's linter gaps: servers stopped by their own means (ray stop, apptainer instance stop; HPC522/HPC539),
build trees made under $HOME by mktemp (HPC207), SGLang/vLLM GPU counts in bash -c scripts and SGLang's
--gpu-id-step (HPC139), a Dockerfile SHELL whose JSON is invalid, vLLM/SGLang parallelism over several nodes without
a Ray cluster, and ~ in a variable's value read as $HOME by every rule (ParsedScript.resolve)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- 1. HPC522 / HPC539: ray stop and apptainer instance stop end the server ---------------------------------------

RAY_ONE_NODE = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --gres=gpu:2
srun ray start --head --port=6379 --num-gpus=2 --block &
sleep 20
python tune_driver.py --address localhost:6379
STOP
srun python summarise.py
"""


def test_ray_stop_ends_the_ray_head_before_the_next_step():
    assert found(RAY_ONE_NODE.replace("STOP\n", ""), "HPC522")  # the server still holds the node then
    assert not found(RAY_ONE_NODE.replace("STOP", "ray stop"), "HPC522")
    assert not found(RAY_ONE_NODE.replace("STOP", "apptainer exec ray.sif ray stop --force"), "HPC522")


def test_ray_stop_run_as_a_step_of_its_own_is_not_read_as_the_batch_shells():
    assert found(RAY_ONE_NODE.replace("STOP", "srun ray stop"), "HPC522")


RAY_IN_THE_SHELL = """#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
ray start --head --block &
sleep 20
python driver.py
STOP
wait
"""


def test_ray_stop_before_the_wait_ends_the_ray_the_batch_shell_started():
    assert found(RAY_IN_THE_SHELL.replace("STOP\n", ""), "HPC539")
    assert not found(RAY_IN_THE_SHELL.replace("STOP", "ray stop"), "HPC539")
    # ray stop does not stop a server of another kind
    other = RAY_IN_THE_SHELL.replace("ray start --head --block", "vllm serve facebook/opt-125m")
    assert found(other.replace("STOP", "ray stop"), "HPC539")


RAY_TWO_NODES = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
nodes_array=($nodes)
head_node=${nodes_array[0]}
srun --nodes=1 --ntasks=1 -w "$head_node" ray start --head --port=6379 --block &
sleep 10
srun --nodes=1 --ntasks=1 -w "${nodes_array[1]}" ray start --address "$head_node:6379" --block &
sleep 10
python driver.py
ray stop
srun python post.py
"""


def test_ray_stop_in_the_batch_shell_stops_the_head_on_its_node_and_so_the_workers_that_need_it():
    lines = [line for line, _ in found(RAY_TWO_NODES, "HPC522")]
    # the head (line 8) runs where ray stop does; the worker on the second node loses its head and exits once it has
    # not reached it for Ray's reconnect timeout (60 s by default)
    assert lines == []


VLLM_IN_AN_INSTANCE = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
NAME=llm
apptainer instance start --nv vllm.sif "$NAME"
apptainer exec instance://$NAME vllm serve meta-llama/Llama-3.1-8B-Instruct &
until curl -sf http://localhost:8000/health; do sleep 10; done
python run_eval.py --base-url http://localhost:8000/v1
STOP
wait
"""


@pytest.mark.parametrize("stop", [
    'apptainer instance stop "$NAME"', "apptainer instance stop llm", "singularity instance stop llm",
    "apptainer instance stop --all", "apptainer instance stop -a", "apptainer instance stop 'll*'",
    "apptainer instance stop -s TERM -t 30 llm", "apptainer instance stop -F llm", "singularity instance.stop llm"])
def test_stopping_the_instance_ends_the_server_that_runs_in_it(stop):
    assert not found(VLLM_IN_AN_INSTANCE.replace("STOP", stop), "HPC539")


@pytest.mark.parametrize("stop", ["", "apptainer instance stop llm2", "apptainer instance stop --all=false llm2",
                                  "apptainer instance list"])
def test_stopping_another_instance_or_none_leaves_the_wait_reported(stop):
    assert len(found(VLLM_IN_AN_INSTANCE.replace("STOP", stop), "HPC539")) == 1


def test_an_instance_stop_ends_an_srun_step_in_the_instance_before_the_next_step():
    script = VLLM_IN_AN_INSTANCE.replace("apptainer exec instance", "srun apptainer exec instance") \
        .replace("wait\n", "srun python post.py\n")
    assert [line for line, _ in found(script.replace("STOP\n", ""), "HPC522")] == [8]
    assert not found(script.replace("STOP", "apptainer instance stop llm"), "HPC522")
    assert found(script.replace("STOP", "apptainer instance stop other"), "HPC522")


# --- 2. HPC207: a build tree mktemp makes under $HOME -------------------------------------------------------------

BUILD = """#!/bin/bash
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
TMP_LINE
apptainer build --fakeroot "$SCRATCH/images/app.sif" app.def
"""


@pytest.mark.parametrize("line, folder", [
    ('export APPTAINER_TMPDIR=$(mktemp -d "$HOME/tmp.XXXX")', "$HOME/tmp.XXXX"),
    ('export APPTAINER_TMPDIR=$(mktemp -d -p "$HOME")', "$HOME/tmp.XXXXXXXXXX"),
    ('export APPTAINER_TMPDIR="$(mktemp -d --tmpdir="$HOME" build.XXXXXX)"', "$HOME/build.XXXXXX"),
    ("export SINGULARITY_TMPDIR=`mktemp -dp ~`", "~/tmp.XXXXXXXXXX"),
    ('BUILD_TMP=$(mktemp -d -p "$HOME")\nexport APPTAINER_TMPDIR=$BUILD_TMP', "$HOME/tmp.XXXXXXXXXX"),
    ('export TMPDIR="$HOME/tmp"\nexport APPTAINER_TMPDIR=$(mktemp -d)', "$HOME/tmp/tmp.XXXXXXXXXX")])
def test_a_temporary_folder_mktemp_makes_under_home_is_reported(line, folder):
    hits = found(BUILD.replace("TMP_LINE", line), "HPC207")
    assert len(hits) == 1
    assert f"makes the folder {folder}, under $HOME" in hits[0][1]


@pytest.mark.parametrize("line", [
    'export APPTAINER_TMPDIR=$(mktemp -d -p "$SCRATCH")', "export APPTAINER_TMPDIR=$(mktemp -d)",
    'export APPTAINER_TMPDIR=$(mktemp -d --tmpdir="$SCRATCH" build.XXXX)',
    'export APPTAINER_TMPDIR=$(mktemp -d -t -p "$HOME" b.XXXX)',  # -t: $TMPDIR first, which the job may set
    'export APPTAINER_TMPDIR=$(mktemp -d "$SCRATCH/tmp.XXXX")'])
def test_a_temporary_folder_mktemp_makes_elsewhere_is_not(line):
    assert not found(BUILD.replace("TMP_LINE", line), "HPC207")


# --- 3. HPC139: CUDA_VISIBLE_DEVICES inside bash -c, and SGLang's --gpu-id-step ------------------------------------

FOUR_GPUS = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
module load cuda/12.4
"""


@pytest.mark.parametrize("line", [
    'bash -c "CUDA_VISIBLE_DEVICES=0,1 python -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --tp 4"',
    'sh -c "CUDA_VISIBLE_DEVICES=0,1 python3 -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --tp 4"',
    "nohup bash -c 'export CUDA_VISIBLE_DEVICES=2,3; vllm serve Qwen/Qwen2.5-7B-Instruct --tensor-parallel-size 4' &",
    "apptainer exec --nv sglang.sif bash -c 'CUDA_VISIBLE_DEVICES=0,1 python3 -m sglang.launch_server "
    "--model-path Qwen/Qwen2.5-7B-Instruct --tp 4'",
    "srun apptainer exec --nv vllm.sif bash -c 'export CUDA_VISIBLE_DEVICES=0,1 && vllm serve m -tp 4'"])
def test_cuda_visible_devices_set_in_a_bash_c_script_limits_the_server(line):
    hits = found(FOUR_GPUS + line + "\n", "HPC139")
    assert len(hits) == 1 and hits[0][0] == 8
    assert "CUDA_VISIBLE_DEVICES=" in hits[0][1] and "2 GPUs" in hits[0][1]


@pytest.mark.parametrize("line", [
    'bash -c "CUDA_VISIBLE_DEVICES=0,1,2,3 python -m sglang.launch_server --model-path m --tp 4"',
    'bash -c "vllm serve m --tensor-parallel-size 2; export CUDA_VISIBLE_DEVICES=0"',  # exported after it
    "bash -c 'python -m sglang.launch_server --model-path m --tp 4'"])
def test_a_bash_c_server_that_fits_its_gpus_is_not_reported(line):
    assert not found(FOUR_GPUS + line + "\n", "HPC139")


def test_a_bash_c_server_with_too_many_ranks_for_the_job_is_reported():
    hits = found(FOUR_GPUS + "bash -c 'python -m sglang.launch_server --model-path m --tp 8'\n", "HPC139")
    assert len(hits) == 1 and "4 GPUs per node" in hits[0][1]


@pytest.mark.parametrize("args, highest", [
    ("--tp 4 --gpu-id-step 2", 6), ("--tp 2 --base-gpu-id 2 --gpu-id-step 2", 4),
    ("--tp-size 2 --base-gpu-id 1 --gpu-id-step 3", 4), ("--tp 2 --dp 2 --gpu-id-step 2", 6)])
def test_sglang_gpu_id_step_past_the_nodes_gpus_is_reported(args, highest):
    hits = found(FOUR_GPUS + f"python -m sglang.launch_server --model-path m {args} --port 30000\n", "HPC139")
    assert len(hits) == 1
    assert f"up to GPU {highest}" in hits[0][1] or f", {highest} (--gpu-id-step" in hits[0][1]
    assert "must be below 4" in hits[0][1]


@pytest.mark.parametrize("args", ["--tp 2 --gpu-id-step 2", "--tp 2 --base-gpu-id 1 --gpu-id-step 2",
                                  "--tp 4 --gpu-id-step 1", "--tp 2 --dp 2 --enable-dp-attention --gpu-id-step 2",
                                  "--tp 1 --gpu-id-step 4"])
def test_sglang_gpu_id_step_within_the_nodes_gpus_is_not(args):
    assert not found(FOUR_GPUS + f"python -m sglang.launch_server --model-path m {args}\n", "HPC139")


# --- 4. A Dockerfile SHELL that is not JSON: reported, and the rest still checked ---------------------------------

DOCKERFILE = """FROM nvcr.io/nvidia/pytorch:24.05-py3
SHELL_LINE
ENV HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz123456
RUN source /opt/conda/etc/profile.d/conda.sh && conda activate base && python -V
FROM ubuntu:latest AS runtime
"""


def codes_of(text: str, path: str = "Dockerfile") -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint(text, path=path)]


def test_a_shell_in_single_quotes_is_reported_and_the_rest_of_the_dockerfile_is_checked():
    found = lint(DOCKERFILE.replace("SHELL_LINE", "SHELL ['/bin/bash', '-c']"), path="Dockerfile")
    assert [(f.line, f.code) for f in found] == [(2, "HPC000"), (3, "HPC702"), (5, "HPC701")]
    message = found[0].message
    assert "SHELL requires the arguments to be in JSON form" in message and "ch-image" in message
    assert 'SHELL ["/bin/bash", "-c"]' in message
    # the RUN after it is read with the bash it meant: source is no problem there (no HPC706)


def test_a_shell_that_names_no_clear_list_leaves_the_runs_under_sh():
    found = codes_of(DOCKERFILE.replace("SHELL_LINE", "SHELL /bin/bash -c"))
    assert found == [(2, "HPC000"), (3, "HPC702"), (4, "HPC706"), (5, "HPC701")]


def test_a_json_shell_is_no_problem():
    assert codes_of(DOCKERFILE.replace("SHELL_LINE", 'SHELL ["/bin/bash", "-c"]')) == [(3, "HPC702"), (5, "HPC701")]


def test_an_empty_shell_list_is_reported_and_the_rest_checked():
    found = codes_of(DOCKERFILE.replace("SHELL_LINE", "SHELL []"))
    assert found[0] == (2, "HPC000") and (3, "HPC702") in found and (5, "HPC701") in found


# --- 5. HPC139: vLLM parallelism over several nodes with no Ray cluster joining them --------------------------------

TWO_NODES = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
module load cuda/12.4
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
"""

RAY_CLUSTER = """srun --nodes=1 --ntasks=1 -w "$head" ray start --head --port=6379 --block &
sleep 15
srun --nodes=1 --ntasks=1 -x "$head" ray start --address="$head:6379" --block &
sleep 15
"""


@pytest.mark.parametrize("server", [
    "vllm serve meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 4 --pipeline-parallel-size 2",
    "vllm serve meta-llama/Llama-3.1-70B-Instruct -tp 8",
    "python -m vllm.entrypoints.openai.api_server --model m --tensor-parallel-size 8",
    "apptainer exec --nv vllm.sif vllm serve m -tp 8 --distributed-executor-backend ray"])
def test_vllm_over_more_than_a_node_without_a_ray_cluster_is_reported(server):
    hits = found(TWO_NODES + server + "\n", "HPC139")
    assert len(hits) == 1 and hits[0][0] == 9
    assert "needs 8 GPUs" in hits[0][1] and "no Ray cluster joins the job's nodes" in hits[0][1]
    assert "4 GPUs on its node" in hits[0][1]


def test_vllm_with_the_mp_backend_and_no_nnodes_is_reported_with_what_mp_does():
    hits = found(TWO_NODES + "vllm serve m -tp 8 --distributed-executor-backend mp\n", "HPC139")
    assert len(hits) == 1 and "runs every rank on this node" in hits[0][1]


@pytest.mark.parametrize("before, server", [
    (RAY_CLUSTER, "vllm serve m --tensor-parallel-size 4 --pipeline-parallel-size 2"),
    ("srun bash -c 'ray start --head --block' &\n", "vllm serve m -tp 8"),
    ('export RAY_ADDRESS="$head:6379"\n', "vllm serve m -tp 8"),
    ("bash ./start_ray_cluster.sh\n", "vllm serve m -tp 8"),
    ("", "srun vllm serve m -tp 4 -pp 2 --distributed-executor-backend mp --nnodes 2 --node-rank \"$SLURM_NODEID\" "
         "--master-addr \"$head\""),
    ("", "srun torchrun --nnodes 2 --nproc-per-node 4 serve.py"),
    ("", "vllm serve m -tp 4"),  # fits one node
    ("", "srun python -m sglang.launch_server --model-path m --tp 8 --nnodes 2 --node-rank \"$SLURM_NODEID\" "
         "--dist-init-addr \"$head:5000\"")])
def test_a_ray_cluster_or_a_launch_over_the_nodes_is_left_alone(before, server):
    assert not found(TWO_NODES + before + server + "\n", "HPC139")


def test_a_ray_cluster_does_not_lift_the_limit_of_all_the_jobs_gpus():
    hits = found(TWO_NODES + RAY_CLUSTER + "vllm serve m -tp 8 -pp 2\n", "HPC139")
    assert len(hits) == 1 and "the job has 8 in all" in hits[0][1]


def test_sglang_over_more_than_a_node_without_nnodes_is_reported_as_before():
    hits = found(TWO_NODES + "python -m sglang.launch_server --model-path m --tp 8\n", "HPC139")
    assert len(hits) == 1 and "the ranks beyond 4" in hits[0][1]


# --- 6. ParsedScript.resolve reads a leading ~ of an assignment as $HOME --------------------------------------------

def resolved(script: str, value: str) -> str:
    from hpcwidgets.parse.script import read_script
    parsed = read_script(script + "true\n")
    return parsed.resolve(value, len(script.splitlines()) + 1)


@pytest.mark.parametrize("assignment, value, expected", [
    ("IMG=~/containers/pytorch.sif", "$IMG", "$HOME/containers/pytorch.sif"),
    ("IMG=~", "${IMG}/x.sif", "$HOME/x.sif"),
    ("NAME=pytorch\nIMG=~/containers/$NAME.sif", "$IMG", "$HOME/containers/pytorch.sif"),
    ("DIR=~/images\nIMG=$DIR/x.sif", "$IMG", "$HOME/images/x.sif"),
    ("P=/opt/bin:~/bin", "$P", "/opt/bin:$HOME/bin"),
    ("IMG=~bob/x.sif", "$IMG", "$IMG"),           # another user's home: known only on the machine
    ('IMG="~/x.sif"', "$IMG", "~/x.sif"),         # quoted: no tilde expansion, the text itself
    ("IMG=~/$(date +%F).sif", "$IMG", "$HOME/$(date +%F).sif"),  # under home, its name known to the job
    ("IMG=$SCRATCH/x.sif", "$IMG", "$SCRATCH/x.sif"),
    ("", "$UNSET/x", "$UNSET/x")])                # unknown variables stay references
def test_resolve_reads_a_tilde_as_bash_expands_it_in_an_assignment(assignment, value, expected):
    script = "#!/bin/bash\n" + (assignment + "\n" if assignment else "")
    assert resolved(script, value) == expected


def test_resolve_written_keeps_the_assignments_text():
    from hpcwidgets.parse.script import read_script
    parsed = read_script("#!/bin/bash\nIMG=~/x.sif\ntrue\n")
    assert parsed.resolve_written("$IMG", 3) == "~/x.sif"


@pytest.mark.parametrize("line", ["IMG=~/containers/pytorch_24.05.sif", "BASE=~/containers\nIMG=$BASE/pytorch_24.05.sif"])
def test_an_image_set_with_a_tilde_is_under_home_and_shown_as_written(line):
    script = f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{line}\napptainer exec --nv \"$IMG\" python train.py\n"
    hits = found(script, "HPC206")
    assert len(hits) == 1 and "the image ~/containers/pytorch_24.05.sif is under $HOME" in hits[0][1]


@pytest.mark.parametrize("line", ["H=~", "H=~/", "export H=~"])
def test_a_bind_of_the_home_folder_through_a_tilde_variable_is_seen_by_the_bind_rule(line):
    # HPC204 reads the bind's source through resolve: before, $H stayed a reference and the bind went unnoticed
    script = (f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{line}\n"
              "apptainer exec --nv -B $H:/home \"$SCRATCH/images/pytorch_24.05.sif\" python train.py\n")
    hits = found(script, "HPC204")
    assert len(hits) == 1 and "whole home directory" in hits[0][1]


def test_a_cache_folder_set_with_a_tilde_is_under_home():
    script = ("#!/bin/bash\nCACHE=~/.apptainer-cache\nexport APPTAINER_CACHEDIR=$CACHE\n"
              "apptainer pull \"$SCRATCH/x.sif\" docker://nvcr.io/nvidia/pytorch:24.05-py3\n")
    assert [line for line, _ in found(script, "HPC207")] == [3]
