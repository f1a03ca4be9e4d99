"""Session 19's lint changes (engineer E3).

- HPC536: a placeholder in square brackets in an #SBATCH value (``--account=[CSC_PROJECT_2]``, ``--mail-user=[your
  email]``), where Slurm takes the brackets as written; not a hostlist, an array, --constraint's matching OR, or
  brackets in a command (a glob, a ``[[ test ]]``, ``${A[0]}``, a usage line's ``[options]``).
- HPC139: the GPUs an SGLang or vLLM server sees through CUDA_VISIBLE_DEVICES, SGLang's --base-gpu-id, and the
  data-parallel replicas (TP × PP × DP GPUs).
- HPC610: JupyterLab run with ``apptainer exec instance://NAME`` in an instance started with ``--net``.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse.lexer import TEMPLATE_PLACEHOLDER, template_placeholder


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=[code])]


HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


# ==============================================================================================
# one placeholder pattern, with doubled brackets for #SBATCH lines only

def test_the_command_pattern_takes_no_doubled_brackets_and_the_directive_one_does() -> None:
    assert TEMPLATE_PLACEHOLDER.fullmatch("<DATA_DIR>") and not TEMPLATE_PLACEHOLDER.fullmatch("<<PROJECT>>")
    assert template_placeholder(doubled=True).fullmatch("<<PROJECT>>")
    assert template_placeholder(doubled=True).fullmatch("<your project>")


# ==============================================================================================
# HPC536: square-bracket placeholders on #SBATCH lines

@pytest.mark.parametrize("directive, name", [
    ("--account=[CSC_PROJECT_2]", "[CSC_PROJECT_2]"),
    ("--partition=[YOUR_PARTITION]", "[YOUR_PARTITION]"),
    ("--mail-user=[your email]", "[your email]"),
    ("-A [project]", "[project]"),
    ("--output=logs/[JOB_NAME]-%j.out", "[JOB_NAME]"),
    ("--account=[[PROJECT]]", "[[PROJECT]]"),
    ("--qos='[YOUR QOS]'", "[YOUR QOS]"),
])
def test_a_bracketed_placeholder_in_an_sbatch_value_is_reported(directive: str, name: str) -> None:
    hits = [f for f in lint(HEAD + f"#SBATCH {directive}\npython t.py\n") if f.severity == "error"]
    assert [(f.code, f.line) for f in hits] == [("HPC536", 3)]   # and no HPC310 for the word a blank splits off
    assert hits[0].message.startswith(f"{name} is a placeholder left from a template")
    assert hits[0].message.endswith("without the square brackets")


def test_angle_and_square_placeholders_on_one_line_are_named_in_order() -> None:
    hits = found(HEAD + "#SBATCH -A [project] -p <partition>\npython t.py\n", "HPC536")
    assert len(hits) == 1 and "[project] and <partition> are placeholders" in hits[0][1]
    assert hits[0][1].endswith("without the brackets")


@pytest.mark.parametrize("line", [
    "#SBATCH --array=[0-4]",
    "#SBATCH --array=[1-10]%2",
    "#SBATCH --nodelist=n[01-04]",
    "#SBATCH --exclude=gpu[1,3]",
    "#SBATCH --exclude=jwb[0026,0098]",
    "#SBATCH --constraint=[v100|p100]",
    "#SBATCH -C [haswell]",
    "#SBATCH --prefer=[rack1]",
    "#SBATCH --output=run[final].out",
    '#SBATCH --comment="[ECCV deadline]"',
    "#SBATCH --wrap='ls [abc]*'",
    "ls data/[0-9]*",
    "if [[ -f x.txt ]]; then echo yes; fi",
    'A=(1 2)\necho "${A[0]}"',
    "./app [options]",
    'python t.py --labels "[cat]"',
])
def test_slurm_and_bash_brackets_are_left_alone(line: str) -> None:
    assert found(HEAD + line + "\npython t.py\n", "HPC536") == []


def test_a_placeholder_after_a_free_text_option_on_the_same_line_is_still_one() -> None:
    hits = found(HEAD + "#SBATCH --job-name=train --account=<project>\npython t.py\n", "HPC536")
    assert [n for n, _ in hits] == [3] and "<project> is a placeholder" in hits[0][1]


def test_an_unquoted_job_name_in_brackets_with_a_blank_is_unreadable_not_a_placeholder() -> None:
    codes = {(f.code, f.line) for f in lint(HEAD + "#SBATCH --job-name=[my job]\npython t.py\n")}
    assert ("HPC310", 3) in codes and ("HPC536", 3) not in codes


# ==============================================================================================
# HPC139: CUDA_VISIBLE_DEVICES, --base-gpu-id and data parallelism

ONE_NODE_4 = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n#SBATCH --time=04:00:00\n"


@pytest.mark.parametrize("lines, shown", [
    ("CUDA_VISIBLE_DEVICES=0,1 python -m sglang.launch_server --model-path m --tp 4",
     "python -m sglang.launch_server --tp 4 starts 4 ranks on its node, one GPU each, but CUDA_VISIBLE_DEVICES=0,1 "
     "shows it 2 GPUs"),
    ("export CUDA_VISIBLE_DEVICES=0,1\nvllm serve m -tp 4",
     "vllm serve -tp 4 needs 4 GPUs (tensor × pipeline parallel size), but CUDA_VISIBLE_DEVICES=0,1 shows it 2 GPUs"),
    ("srun env CUDA_VISIBLE_DEVICES=0,1 python -m sglang.launch_server --model-path m --tp 4",
     "CUDA_VISIBLE_DEVICES=0,1 shows it 2 GPUs"),
    ("srun bash -c 'CUDA_VISIBLE_DEVICES=0 vllm serve m -tp 2'", "CUDA_VISIBLE_DEVICES=0 shows it 1 GPU"),
    ("apptainer exec --nv --env CUDA_VISIBLE_DEVICES=0,1 vllm.sif vllm serve m -tp 4",
     "CUDA_VISIBLE_DEVICES=0,1 shows it 2 GPUs"),
    ("GPUS=0,1\nCUDA_VISIBLE_DEVICES=$GPUS vllm serve m -tp 4", "CUDA_VISIBLE_DEVICES=$GPUS shows it 2 GPUs"),
    ("CUDA_VISIBLE_DEVICES=0,1,-1,2 vllm serve m -tp 4", "shows it 2 GPUs"),   # CUDA stops reading at -1
])
def test_a_server_sees_the_gpus_cuda_visible_devices_shows_it(lines: str, shown: str) -> None:
    hits = found(ONE_NODE_4 + lines + "\n", "HPC139")
    assert len(hits) == 1 and shown in hits[0][1] and "stops at start-up" in hits[0][1]


def test_the_advice_fits_the_gpus_cuda_visible_devices_shows() -> None:
    hits = found(ONE_NODE_4 + "CUDA_VISIBLE_DEVICES=0,1 vllm serve m -tp 4 &\nwait\n", "HPC139")
    assert hits[0][1].endswith("use -tp 2 to fit the 2 GPUs, or ask for more GPUs")


@pytest.mark.parametrize("lines", [
    # two servers side by side, each on GPUs of its own
    "CUDA_VISIBLE_DEVICES=0,1 vllm serve m -tp 2 &\nCUDA_VISIBLE_DEVICES=2,3 vllm serve m2 -tp 2 --port 8001 &\nwait",
    # srun gives its tasks the step's own GPUs: a value before it is not what the server sees
    "CUDA_VISIBLE_DEVICES=0,1 srun python -m sglang.launch_server --model-path m --tp 4",
    "export CUDA_VISIBLE_DEVICES=0\nsrun vllm serve m -tp 4",
    # a value the job works out when it runs
    "CUDA_VISIBLE_DEVICES=$SLURM_LOCALID vllm serve m -tp 1",
    'CUDA_VISIBLE_DEVICES="$1" vllm serve m -tp 2',
    # more listed than the job has: the job's GPUs are the limit, and they fit
    "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 vllm serve m -tp 4",
])
def test_servers_within_the_gpus_they_see_are_left_alone(lines: str) -> None:
    assert found(ONE_NODE_4 + lines + "\n", "HPC139") == []


def test_more_listed_than_the_job_has_is_measured_by_the_jobs_gpus() -> None:
    hits = found(ONE_NODE_4 + "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 vllm serve m -tp 8\n", "HPC139")
    assert len(hits) == 1 and "but the job has 4 GPUs on its node" in hits[0][1]


def test_sglang_ranks_start_at_the_base_gpu() -> None:
    hits = found(ONE_NODE_4 + "python -m sglang.launch_server --model-path m --tp 4 --base-gpu-id 2\n", "HPC139")
    assert hits == [(5, "python -m sglang.launch_server --tp 4 --base-gpu-id 2 starts 4 ranks on its node from GPU 2, "
                        "one GPU each, but the job has 4 GPUs per node: the ranks past GPU 3 are given GPU numbers the "
                        "node does not have and the server stops at start-up; use --tp 2 to fit the 2 GPUs from GPU 2 "
                        "on, or ask for more GPUs")]


def test_a_base_gpu_past_the_last_one_is_reported_for_a_single_rank() -> None:
    hits = found(ONE_NODE_4 + "python -m sglang.launch_server --model-path m --base-gpu-id 4\n", "HPC139")
    assert len(hits) == 1 and "starts 1 rank on its node from GPU 4" in hits[0][1]
    assert hits[0][1].endswith("use a lower --base-gpu-id (the GPUs are numbered from 0) or ask for more GPUs")


@pytest.mark.parametrize("command", [
    "python -m sglang.launch_server --model-path m --tp 2 --base-gpu-id 2",
    "python -m sglang.launch_server --model-path m --base-gpu-id 3",
    "python -m sglang.launch_server --model-path m --tp 2 --dp 2",
    "python -m sglang.launch_server --model-path m --tp 4 --dp 4 --enable-dp-attention",  # DP inside the TP group
    "sglang serve --model-path m --tp-size 2 --data-parallel-size 2",
    'python -m sglang.launch_server --model-path m --tp 2 --base-gpu-id "$BASE"',
])
def test_sglang_servers_that_fit_from_their_base_gpu_or_with_replicas_are_left_alone(command: str) -> None:
    assert found(ONE_NODE_4 + command + "\n", "HPC139") == []


def test_sglang_data_parallel_replicas_each_take_their_tensor_ranks() -> None:
    hits = found(ONE_NODE_4 + "python -m sglang.launch_server --model-path m --tp 4 --dp 2\n", "HPC139")
    assert len(hits) == 1
    assert "--tp 4 --dp 2 starts 8 ranks on its node (2 data-parallel replicas of 4), one GPU each" in hits[0][1]
    assert hits[0][1].endswith("use --tp 2 to fit the 4 GPUs, or ask for more GPUs")


@pytest.mark.parametrize("command, needs", [
    ("vllm serve m --data-parallel-size 4 --tensor-parallel-size 2",
     "needs 8 GPUs (tensor × pipeline parallel size × 4 data-parallel replicas)"),
    ("vllm serve m -dp 8 -dpl 4 -tp 2", "needs 8 GPUs (tensor × pipeline parallel size × 4 data-parallel replicas)"),
    ("vllm serve m -dp 2 -tp 2 -pp 2", "needs 8 GPUs"),
])
def test_vllm_data_parallel_replicas_on_the_node_are_counted(command: str, needs: str) -> None:
    hits = found(ONE_NODE_4 + command + "\n", "HPC139")
    assert len(hits) == 1 and needs in hits[0][1] and "but the job has 4 GPUs on its node" in hits[0][1]


@pytest.mark.parametrize("command", [
    "vllm serve m -dp 2 -tp 2",
    "vllm serve m --data-parallel-size 8 --data-parallel-size-local 2 --tensor-parallel-size 2",  # 2 here, 6 elsewhere
    "vllm serve m --data-parallel-size 4 --data-parallel-size-local 0",                          # the API server only
    "CUDA_VISIBLE_DEVICES=1 vllm serve m -dp 2 --data-parallel-rank 1",                           # one replica
])
def test_vllm_data_parallel_servers_that_fit_are_left_alone(command: str) -> None:
    assert found(ONE_NODE_4 + command + "\n", "HPC139") == []


def test_vllm_data_parallel_over_a_ray_cluster_counts_every_replica() -> None:
    script = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gpus-per-node=4\n"
              "vllm serve m -tp 4 -dp 4 --data-parallel-backend ray\n")
    hits = found(script, "HPC139")
    assert len(hits) == 1 and "needs 16 GPUs" in hits[0][1] and "the job has 8 in all" in hits[0][1]
    assert hits[0][1].endswith("use -tp 2 to fit the 8 GPUs in all, or ask for more GPUs")


# ==============================================================================================
# HPC610: JupyterLab in an instance started with a network of its own

START = "apptainer instance start --net --network=bridge lab.sif lab\n"
JUPYTER = 'apptainer exec instance://lab jupyter lab --no-browser --ip="$(hostname -s)" --port=8888\n'


def test_jupyter_in_an_instance_with_its_own_network_is_reported() -> None:
    hits = found(HEAD + START + JUPYTER, "HPC610")
    assert hits == [(4, "apptainer exec instance://lab runs JupyterLab in the instance started on line 3 with --net "
                        "--network=bridge, which runs in a network of its own: the node's address that "
                        "--ip=\"$(hostname -s)\" names does not exist there, so JupyterLab cannot listen on it and "
                        "stops at start-up; remove --net and --network=bridge from that instance start (without them "
                        "the container shares the node's network)")]


def test_an_instance_named_through_a_variable_and_run_under_srun() -> None:
    script = (HEAD + "NAME=lab\nsingularity instance start -n lab.sif \"$NAME\"\n"
              "srun singularity exec instance://$NAME jupyter lab --no-browser\n")
    hits = found(script, "HPC610")
    assert len(hits) == 1 and "singularity exec instance://lab runs JupyterLab in the instance started on line 4 " \
        "with -n" in hits[0][1] and "the container's own loopback" in hits[0][1]


@pytest.mark.parametrize("script", [
    "apptainer instance start lab.sif lab\n" + JUPYTER,                      # the node's network
    "apptainer instance start --net=false lab.sif lab\n" + JUPYTER,
    START + JUPYTER.replace('"$(hostname -s)"', "0.0.0.0"),                  # a port mapping can publish it
    START.replace(" lab\n", " other\n") + JUPYTER,                            # another instance
    JUPYTER + START,                                                          # started after the exec
])
def test_instances_that_share_the_nodes_network_are_left_alone(script: str) -> None:
    assert found(HEAD + script, "HPC610") == []
