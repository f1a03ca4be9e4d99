"""Session 18, three gaps: an SGLang or vLLM server whose tensor × pipeline parallel size is larger than the GPUs
the job has for it (HPC139, audit A3 M2), ``--set title=…`` and ``--title`` on a workflow read from a script without
hpcwidgets' header (refused: the title would not be written), and a hand-written JupyterLab job whose container runs
in a network of its own (HPC610, the reason the JupyterJob model gives for refusing --net)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.lint import lint
from test_cli_s18 import run  # the CLI run that also asserts no traceback


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=[code])]


def job(*directives: str) -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives)


ONE_NODE_4 = job("--nodes=1", "--gres=gpu:4", "--time=04:00:00")
TWO_NODES_8 = job("--nodes=2", "--gpus-per-node=8", "--time=04:00:00")


# ==============================================================================================
# HPC139: tensor × pipeline parallel size over the GPUs

@pytest.mark.parametrize("command, shown", [
    ("python -m sglang.launch_server --model-path m --tp 8", "python -m sglang.launch_server --tp 8 starts 8 ranks"),
    ("python3 -u -m sglang.launch_server --model-path m --tp-size 8", "python3 -u -m sglang.launch_server --tp-size 8"),
    ("sglang serve --model-path m --tensor-parallel-size=8", "sglang serve --tensor-parallel-size 8"),
    ("srun apptainer exec --nv sgl.sif python3 -m sglang.launch_server --model-path m --tp 8 &",
     "python3 -m sglang.launch_server --tp 8"),
    ("srun bash -c 'python -m sglang.launch_server --model-path m --tp 8'", "python -m sglang.launch_server --tp 8"),
    ("uv run python -m sglang.launch_server --model-path m --tp 8", "python -m sglang.launch_server --tp 8"),
])
def test_sglang_with_more_ranks_than_the_nodes_gpus_is_reported(command, shown):
    hits = found(ONE_NODE_4 + command + "\n", "HPC139")
    assert [n for n, _ in hits] == [5]
    assert hits[0][1].startswith(shown)
    assert "the job has 4 GPUs per node" in hits[0][1] and "stops at start-up" in hits[0][1]
    assert hits[0][1].endswith("4 to fit the 4 GPUs, or ask for more GPUs")


def test_the_audited_sglang_job_tp_32_over_two_nodes_of_8_is_reported():
    """A3 M2 (scripts/03): each node runs 32 / 2 = 16 ranks and has 8 GPUs; the head and the worker both."""
    script = TWO_NODES_8 + (
        'nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))\n'
        'srun --nodes=1 --ntasks=1 -w "${nodes[0]}" python3 -m sglang.launch_server --model-path m --tp 32 \\\n'
        '  --dist-init-addr "${nodes[0]}:5000" --nnodes $SLURM_JOB_NUM_NODES --node-rank 0 &\n'
        'srun --nodes=1 --ntasks=1 -w "${nodes[1]}" python3 -m sglang.launch_server --model-path m --tp 32 \\\n'
        '  --dist-init-addr "${nodes[0]}:5000" --nnodes $SLURM_JOB_NUM_NODES --node-rank 1 &\n'
        "wait\n")
    hits = found(script, "HPC139")
    assert [n for n, _ in hits] == [6, 8]
    assert hits[0][1] == (
        "python3 -m sglang.launch_server --tp 32 --nnodes $SLURM_JOB_NUM_NODES (2) starts 16 ranks on each of its 2 "
        "nodes, one GPU each, but the job has 8 GPUs per node: the ranks beyond 8 are given GPU numbers the node does "
        "not have and the server stops at start-up; use --tp 16 to fit the 16 GPUs of its 2 nodes, or ask for more GPUs")


def test_sglang_pipeline_stages_count_with_the_tensor_ranks_on_a_node():
    hits = found(ONE_NODE_4 + "python -m sglang.launch_server --model-path m --tp 4 --pp-size 2\n", "HPC139")
    assert len(hits) == 1 and "--tp 4 --pp-size 2 starts 8 ranks on its node" in hits[0][1]
    assert "use --tp 2 to fit the 4 GPUs" in hits[0][1]


def test_a_size_set_in_the_script_is_read_through_its_variable():
    hits = found(ONE_NODE_4 + "TP=8\nvllm serve m --tensor-parallel-size $TP\n", "HPC139")
    assert len(hits) == 1 and hits[0][1].startswith("vllm serve --tensor-parallel-size $TP (8) needs 8 GPUs")


@pytest.mark.parametrize("command", [
    "vllm serve m --tensor-parallel-size 4 --pipeline-parallel-size 2",
    "vllm serve m -tp 4 -pp 2",
    "vllm serve m --tensor_parallel_size=4 --pipeline_parallel_size=2",  # vLLM reads _ as -
    "python -m vllm.entrypoints.openai.api_server --model m -tp 8",
    "apptainer exec --nv vllm.sif vllm serve m -tp 8",
])
def test_vllm_on_one_node_with_more_ranks_than_its_gpus_is_reported(command):
    hits = found(ONE_NODE_4 + command + "\n", "HPC139")
    assert [n for n, _ in hits] == [5]
    assert "needs 8 GPUs (tensor × pipeline parallel size), but the job has 4 GPUs on its node" in hits[0][1]


#: a Ray cluster over the job's nodes (the head on the first, a worker on each other), as vLLM's multi-node guide has it
RAY = ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
       'srun --nodes=1 --ntasks=1 -w "$head" ray start --head --port=6379 --block &\n'
       'sleep 10\n'
       'srun --nodes=$((SLURM_NNODES - 1)) --ntasks=$((SLURM_NNODES - 1)) --exclude="$head" '
       'ray start --address="$head:6379" --block &\n'
       'sleep 10\n')


def test_vllm_over_a_ray_cluster_is_measured_against_all_the_jobs_gpus():
    script = job("--nodes=2", "--gpus-per-node=4") + "vllm serve m --tensor-parallel-size 8 --pipeline-parallel-size 2\n"
    hits = found(script, "HPC139")
    assert len(hits) == 1 and "needs 16 GPUs" in hits[0][1] and "the job has 8 in all" in hits[0][1]
    assert "use --tensor-parallel-size 4 to fit the 8 GPUs in all" in hits[0][1]
    # vLLM's own advice: TP = GPUs per node, PP = nodes, over a Ray cluster the job starts on its nodes (without
    # one, vLLM has one node's GPUs: HPC139 says so, tests/test_lint_s20.py)
    fits = job("--nodes=2", "--gpus-per-node=8") + RAY + "vllm serve m --tensor-parallel-size 8 --pipeline-parallel-size 2\n"
    assert found(fits, "HPC139") == []


def test_vllm_over_nnodes_is_measured_per_node():
    script = job("--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=4") + (
        "srun vllm serve m -tp 8 -pp 2 --nnodes 2 --node-rank $SLURM_NODEID --master-addr head\n")
    hits = found(script, "HPC139")
    assert len(hits) == 1 and "over --nnodes 2: 8 on each node, but the job has 4 GPUs on each node" in hits[0][1]


def test_a_step_that_asks_for_fewer_gpus_than_the_job_is_measured_by_its_own():
    hits = found(ONE_NODE_4 + "srun --gres=gpu:2 python -m sglang.launch_server --model-path m --tp 4\n", "HPC139")
    assert len(hits) == 1 and "but this step has 2 GPUs per node" in hits[0][1]


def test_gpus_in_all_without_nodes_are_the_limit():
    hits = found(job("--gpus=8") + "vllm serve m -tp 16\n", "HPC139")
    assert len(hits) == 1 and "the job has 8 in all" in hits[0][1]
    assert found(job("--gpus=8") + "vllm serve m -tp 8\n", "HPC139") == []


@pytest.mark.parametrize("script", [
    ONE_NODE_4 + "python -m sglang.launch_server --model-path m --tp 4\n",
    ONE_NODE_4 + "vllm serve m --tensor-parallel-size 4\n",
    ONE_NODE_4 + "vllm serve m\n",                                           # one GPU
    TWO_NODES_8 + "srun python -m sglang.launch_server --model-path m --tp 16 --nnodes 2 --node-rank $SLURM_NODEID\n",
    TWO_NODES_8 + "srun python -m sglang.launch_server --model-path m --tp 8 --pp-size 2 --nnodes 2 "
                  "--node-rank $SLURM_NODEID\n",
    TWO_NODES_8 + "srun python -m sglang.launch_server --model-path m --data-parallel-size 16 --nnodes 2\n",
    # a size the job works out when it runs, or one the script does not fix
    ONE_NODE_4 + 'python -m sglang.launch_server --model-path m --tp "$SLURM_GPUS_ON_NODE"\n',
    ONE_NODE_4 + 'vllm serve m -tp "$((SLURM_GPUS_ON_NODE * 2))"\n',
    ONE_NODE_4 + 'vllm serve m -tp "$1"\n',
    # GPUs the #SBATCH lines do not fix: none asked for, counted two ways, a node range for Ray
    job("--nodes=1", "--time=01:00:00") + "vllm serve m -tp 8\n",
    job("--nodes=2", "--gpus=4", "--ntasks-per-node=1", "--gpus-per-task=4") + "vllm serve m --tensor-parallel-size 8\n",
    job("--nodes=1-2", "--gpus-per-node=4") + RAY + "vllm serve m -tp 8\n",
    job("--ntasks=2", "--gpus-per-node=4") + RAY + "vllm serve m -tp 8\n",
    # not a server that splits a model: other programs with options of the same name
    ONE_NODE_4 + "python bench.py --tp 8\n",
    ONE_NODE_4 + "vllm bench throughput --model m -tp 8\n",
])
def test_servers_that_fit_or_whose_counts_are_not_known_are_left_alone(script):
    assert found(script, "HPC139") == []


# ==============================================================================================
# --set title / --title on a workflow read from a script without hpcwidgets' header

PLAIN = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\nsrun python train.py\n"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "job.sh"
    path.write_text(PLAIN)
    return path


@pytest.mark.parametrize("argv, where", [(("--set", "title=Train ResNet"), "--set title"),
                                         (("--title", "Train ResNet"), "--title")])
def test_a_title_for_a_script_without_the_header_is_refused_with_what_to_do(capsys, tmp_path, plain, argv, where):
    out = tmp_path / "out.sh"
    code, _, err = run(capsys, "workflow", "--from", str(plain), *argv, "-o", str(out))
    assert code == 2 and not out.exists()
    assert f"hpcwidgets: error: {where}: the title is the first line of the header hpcwidgets writes" in err
    assert "write it as a comment at the top of that script instead" in err


def test_an_empty_title_changes_nothing_and_is_accepted(capsys, plain):
    code, out, _ = run(capsys, "workflow", "--from", str(plain), "--set", "title=")
    assert code == 0 and out == PLAIN


def test_a_model_saved_from_such_a_script_refuses_a_title_too(capsys, tmp_path, plain):
    saved = tmp_path / "job.json"
    assert run(capsys, "workflow", "--from", str(plain), "--format", "json", "-o", str(saved))[0] == 0
    code, _, err = run(capsys, "workflow", "--from", str(saved), "--set", "title=Train ResNet")
    assert code == 2 and "--set title: the title is the first line of the header" in err


def test_a_script_with_the_header_takes_its_new_title(capsys, tmp_path):
    written = tmp_path / "made.sh"
    assert run(capsys, "workflow", "--set", "job.nodes=1", "--program", "python t.py", "--set", "title=First",
               "-o", str(written))[0] == 0
    code, out, _ = run(capsys, "workflow", "--from", str(written), "--set", "title=Second")
    assert code == 0 and "\n# Second\n" in out and "# First" not in out


# ==============================================================================================
# HPC610: JupyterLab in a container with a network of its own

JUPYTER = "#!/bin/bash\n#SBATCH --time=02:00:00\n"
LAB = 'jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0'


@pytest.mark.parametrize("command, runs, remove", [
    (f"apptainer exec --net --network none lab.sif {LAB}", "apptainer exec --net --network none",
     "remove --net and --network none (without them"),
    (f"singularity exec -n lab.sif {LAB}", "singularity exec -n", "remove -n (without it"),
    (f'srun apptainer exec --network-args "portmap=8888:8888/tcp" --net lab.sif {LAB}',
     "apptainer exec --network-args portmap=8888:8888/tcp --net", "remove --network-args portmap=8888:8888/tcp and --net"),
    (f"apptainer exec --net lab.sif bash -c '{LAB}'", "apptainer exec --net", "remove --net (without it"),
])
def test_jupyter_on_the_nodes_address_in_its_own_network_is_reported(command, runs, remove):
    hits = found(JUPYTER + command + "\n", "HPC610")
    assert [n for n, _ in hits] == [3]
    assert hits[0][1].startswith(f"{runs} runs the container in a network of its own: the node's address that "
                                 '--ip="$(hostname -s)" names does not exist there')
    assert remove in hits[0][1]


@pytest.mark.parametrize("ip", ["", " --ip=localhost", " --ip 127.0.0.1"])
def test_jupyter_on_loopback_in_its_own_network_is_reported(ip):
    hits = found(JUPYTER + f"apptainer exec --net lab.sif jupyter lab --no-browser{ip}\n", "HPC610")
    assert len(hits) == 1 and "the container's own loopback, which no tunnel to the node reaches" in hits[0][1]


@pytest.mark.parametrize("command", [
    f"apptainer exec lab.sif {LAB}",
    f"apptainer exec --net=false lab.sif {LAB}",
    "apptainer exec --net --network-args portmap=8888:8888/tcp lab.sif jupyter lab --ip=0.0.0.0",  # published
    f"ch-run lab -- {LAB}",
    f"apptainer exec --net tools.sif curl -s http://example.org\n{LAB}",  # the server runs outside that container
])
def test_jupyter_sharing_the_nodes_network_is_left_alone(command):
    assert found(JUPYTER + command + "\n", "HPC610") == []
