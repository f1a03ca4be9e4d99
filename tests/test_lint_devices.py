"""The rules of :mod:`hpcwidgets.lint.devices`: a device picked by local rank where each task sees one GPU (HPC133), a
Charliecloud image directory made by a GPU job and run without the driver libraries (HPC229), and a JupyterHub
single-user server in a job whose --export drops the hub's token (HPC609). The bad and good cases are the auditor's
(session 12, A2 items 9, 5 and 2), then the near misses."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint, rules


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


def test_the_rules_are_registered_with_their_severities():
    table = rules()
    assert {code: table[code].severity for code in ("HPC133", "HPC229", "HPC609")} == \
        {"HPC133": "error", "HPC229": "error", "HPC609": "error"}


# --- HPC133: a device picked by local rank where each task sees one GPU -----------------------------------------

PER_TASK = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n#SBATCH --gpus-per-task=1\n"
BOUND = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n#SBATCH --gpu-bind=single:1\n"
ALL_GPUS = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"


@pytest.mark.parametrize("text, line, shown", [
    # the auditor's cases: 09-bad, 09b-bad-cvd, 09c-bad-inline
    ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n#SBATCH --gpus-per-task=1\n#SBATCH --cpus-per-task=8\n"
     "export MASTER_ADDR=$(hostname)\nexport MASTER_PORT=29500\n"
     "srun bash -c 'python train.py --device cuda:$SLURM_LOCALID --rank $SLURM_PROCID --world-size $SLURM_NTASKS'\n",
     8, "(cuda:$SLURM_LOCALID)"),
    (BOUND + "srun bash -c 'export CUDA_VISIBLE_DEVICES=$SLURM_LOCALID; python worker.py'\n",
     6, "sets CUDA_VISIBLE_DEVICES=$SLURM_LOCALID"),
    (PER_TASK + "srun python -c 'import os, torch; torch.cuda.set_device(int(os.environ[\"SLURM_LOCALID\"])); "
                "print(torch.cuda.get_device_name())'\n",
     5, '(torch.cuda.set_device(int(os.environ["SLURM_LOCALID"])))'),
    # the options spelled other ways: a space, short forms, srun's own
    ("#!/bin/bash\n#SBATCH --nodes 1\n#SBATCH -n4\n#SBATCH --gpus-per-task 1\n"
     "srun bash -c 'python t.py --device cuda:${SLURM_LOCALID}'\n", 5, "(cuda:${SLURM_LOCALID})"),
    ("#!/bin/bash\n#SBATCH -N 2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
     "srun --gpus-per-task=1 bash -c 'python t.py --device=cuda:$SLURM_LOCALID'\n", 5, "srun --gpus-per-task=1"),
    (ALL_GPUS + "srun --gpu-bind=per_task:1 bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
     5, "srun --gpu-bind=per_task:1"),
    (ALL_GPUS + "#SBATCH --gpu-bind=verbose,single:2\nsrun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
     6, "--gpu-bind=verbose,single:2 on line 5"),
    ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n#SBATCH --gres=gpu:4\n#SBATCH --ntasks-per-gpu=1\n"
     "srun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n", 6, "implies --gpu-bind=single:1"),
    # a LOCAL_RANK set from SLURM_LOCALID in the task's own script
    (PER_TASK + "srun bash -c 'export LOCAL_RANK=$SLURM_LOCALID; python train.py --device cuda:$LOCAL_RANK'\n",
     5, "(cuda:$LOCAL_RANK)"),
    (PER_TASK + "srun bash -c 'LOCAL_RANK=$SLURM_LOCALID python -c \"import os, torch; "
                "torch.cuda.set_device(int(os.environ[\\\"LOCAL_RANK\\\"]))\"'\n",
     5, 'torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))'),
    # python -c: through a name, an f-string, torch.device("cuda", …), the shell's number, CUDA_VISIBLE_DEVICES
    (PER_TASK + "srun python3 -u -c 'import os, torch\nr = int(os.environ.get(\"SLURM_LOCALID\", 0))\n"
                "torch.cuda.set_device(r)'\n", 5, "(torch.cuda.set_device(r))"),
    (PER_TASK + "srun python -c 'import os, torch; r = os.getenv(\"SLURM_LOCALID\"); x = torch.ones(1).to(f\"cuda:{r}\")'\n",
     5, '(f"cuda:{r}")'),
    (PER_TASK + "srun python -c 'import os, torch; d = torch.device(\"cuda\", int(os.environ[\"SLURM_LOCALID\"]))'\n",
     5, 'torch.device("cuda", int(os.environ["SLURM_LOCALID"]))'),
    (PER_TASK + "srun bash -c 'python -c \"import torch; torch.cuda.set_device($SLURM_LOCALID)\"'\n",
     5, "torch.cuda.set_device("),
    (PER_TASK + "srun python -c 'import os; os.environ[\"CUDA_VISIBLE_DEVICES\"] = os.environ[\"SLURM_LOCALID\"]; "
                "import worker'\n", 5, "leave CUDA_VISIBLE_DEVICES as Slurm sets it"),
    # in a container, in a double-quoted script with the reference escaped, before the command
    (PER_TASK + "srun apptainer exec --nv img.sif bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
     5, "(cuda:$SLURM_LOCALID)"),
    (PER_TASK + 'srun bash -c "python t.py --device cuda:\\$SLURM_LOCALID"\n', 5, "(cuda:$SLURM_LOCALID)"),
    (BOUND + "srun bash -c 'CUDA_VISIBLE_DEVICES=$SLURM_LOCALID python worker.py'\n",
     6, "sets CUDA_VISIBLE_DEVICES=$SLURM_LOCALID"),
    # a continued step is reported at its first line
    (PER_TASK + "srun --cpus-per-task=2 \\\n  bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n", 5,
     "(cuda:$SLURM_LOCALID)"),
])
def test_a_device_picked_by_local_rank_with_one_gpu_per_task(text, line, shown):
    hits = found(text, "HPC133")
    assert len(hits) == 1 and hits[0][0] == line, hits
    assert shown in hits[0][1], hits[0][1]
    assert "local rank 1-3" in hits[0][1] or "local rank 1 " in hits[0][1]


def test_the_message_names_the_binding_the_tasks_and_the_way_out():
    (line, message), = found(PER_TASK + "srun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n", "HPC133")
    assert "--gpus-per-task=1 on line 4" in message and "srun starts 4 tasks on a node" in message
    assert "invalid device ordinal" in message and "use cuda:0" in message and "--gpus-per-node" in message


def test_a_step_of_a_later_hetjob_component_is_judged_by_its_own_binding():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH hetjob\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n"
            "#SBATCH --gpus-per-task=1\nsrun --het-group=0 bash -c 'python prep.py --device cuda:$SLURM_LOCALID'\n"
            "srun --het-group=1 bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n")
    assert [line for line, _ in found(text, "HPC133")] == [9]


@pytest.mark.parametrize("text", [
    # the auditor's good cases: 09-good (device 0) and 09d-good-gres (every task sees all the node's GPUs)
    PER_TASK + "srun bash -c 'python train.py --device cuda:0 --rank $SLURM_PROCID --world-size $SLURM_NTASKS'\n",
    ALL_GPUS + "srun bash -c 'python train.py --device cuda:$SLURM_LOCALID'\n",
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"
    "srun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    # the binding switched off, or not one GPU per task
    PER_TASK + "#SBATCH --gpu-bind=none\nsrun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    BOUND + "srun --gpu-bind=none bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    ALL_GPUS + "#SBATCH --gpu-bind=closest\nsrun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    PER_TASK.replace("--gpus-per-task=1", "--gpus-per-task=2") + "srun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    ALL_GPUS + "srun --gpu-bind=per_task:2 bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    # the step asks for GPUs of its own (no per-task count inherited)
    PER_TASK + "srun --gres=gpu:4 bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    # one task per node, one task in the step, or Slurm free to spread the tasks over nodes
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-task=1\n"
    "srun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    PER_TASK + "srun --ntasks=1 bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    "#!/bin/bash\n#SBATCH --ntasks=4\n#SBATCH --gpus-per-task=1\nsrun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
    # expanded once by the batch shell (0 in every task: right here; HPC502's business)
    PER_TASK + "srun python train.py --device cuda:$SLURM_LOCALID\n",
    PER_TASK + 'srun bash -c "python train.py --device cuda:$SLURM_LOCALID"\n',
    PER_TASK + "export CUDA_VISIBLE_DEVICES=$SLURM_LOCALID\nsrun python worker.py\n",
    # a rank taken modulo the GPUs the task sees, a LOCAL_RANK not from SLURM_LOCALID, a name set again
    PER_TASK + "srun python -c 'import os, torch; torch.cuda.set_device(int(os.environ[\"SLURM_LOCALID\"]) % "
               "torch.cuda.device_count())'\n",
    PER_TASK + "srun python -c 'import os, torch\nn = torch.cuda.device_count()\nr = int(os.environ[\"SLURM_LOCALID\"])\n"
               "torch.cuda.set_device(r % n)'\n",
    PER_TASK + "srun bash -c 'export LOCAL_RANK=0; python train.py --device cuda:$LOCAL_RANK'\n",
    PER_TASK + "srun bash -c 'R=$SLURM_LOCALID; R=0; python train.py --device cuda:$R'\n",
    # python -c reading LOCAL_RANK that nothing sets from SLURM_LOCALID, or a LOCAL_RANK not exported to it
    PER_TASK + "srun python -c 'import os, torch; torch.cuda.set_device(int(os.environ[\"LOCAL_RANK\"]))'\n",
    PER_TASK + "srun bash -c 'LOCAL_RANK=$SLURM_LOCALID; python -c \"import os, torch; "
               "torch.cuda.set_device(int(os.environ.get(\\\"LOCAL_RANK\\\", 0)))\"'\n",
    # printed, or only in a comment
    PER_TASK + "srun bash -c 'echo cuda:$SLURM_LOCALID; python t.py'\n",
    PER_TASK + "# each task could use cuda:$SLURM_LOCALID, but sees one GPU\nsrun python t.py --device cuda:0\n",
    # torchrun in each task: its LOCAL_RANK counts its own workers from 0
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-task=4\n"
    "srun torchrun --nproc-per-node=4 train.py\n",
    # no GPU at all
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n#SBATCH --gpu-bind=single:1\n"
    "srun bash -c 'python t.py --device cuda:$SLURM_LOCALID'\n",
])
def test_no_local_rank_device_finding(text):
    assert found(text, "HPC133") == []


# --- HPC229: a Charliecloud image directory made by a GPU job, run without ch-fromhost --nvidia ----------------

GPU_JOB = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:1\n#SBATCH --time=02:00:00\n"


@pytest.mark.parametrize("body, line, made", [
    # the auditor's 05-bad
    ('img=/tmp/$SLURM_JOB_ID/pytorch\nmkdir -p "/tmp/$SLURM_JOB_ID"\n'
     'ch-convert "$SCRATCH/images/pytorch_2.3.tar.gz" "$img"\n'
     'ch-run -b "$SCRATCH/data:/data" -c /data "$img" -- python /opt/train.py\n', 8, "ch-convert, line 7"),
    # ch-tar2dir unpacks into DIR/NAME; tar -x into a directory; a ch-image build converted to a directory
    ("ch-tar2dir $SCRATCH/pytorch.tar.gz /var/tmp\nch-run /var/tmp/pytorch -- python train.py\n", 6,
     "ch-tar2dir, line 5"),
    ("mkdir -p /tmp/pt\ntar -xzf $SCRATCH/pt.tar.gz -C /tmp/pt\nch-run /tmp/pt/ -- python train.py\n", 7,
     "tar -x, line 6"),
    ("ch-image build -t pt -f Dockerfile .\nch-convert -o dir pt /tmp/pt\nsrun ch-run /tmp/pt -- python train.py\n", 7,
     "ch-convert, line 6"),
    # --cray-mpi alone injects no driver; --nvidia on another directory, or before the directory was made
    ("ch-convert pt.sqfs /tmp/pt\nch-fromhost --cray-mpi /tmp/pt\nch-run /tmp/pt -- python train.py\n", 7,
     "ch-convert, line 5"),
    ("ch-convert pt.sqfs /tmp/pt\nch-fromhost --nvidia /tmp/other\nch-run /tmp/pt -- python train.py\n", 7,
     "ch-convert, line 5"),
    ("ch-fromhost --nvidia /tmp/pt\nch-convert pt.sqfs /tmp/pt\nch-run /tmp/pt -- python train.py\n", 7,
     "ch-convert, line 6"),
])
def test_a_gpu_job_runs_an_image_directory_it_made_without_the_driver(body, line, made):
    hits = found(GPU_JOB + body, "HPC229")
    assert len(hits) == 1 and hits[0][0] == line, hits
    assert f"({made})" in hits[0][1] and "ch-fromhost --nvidia" in hits[0][1]


def test_each_node_unpacking_its_copy_is_told_to_inject_on_each_node():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"
            "srun --ntasks-per-node=1 ch-convert $SCRATCH/pt.sqfs /tmp/pt\nsrun ch-run /tmp/pt -- python train.py\n")
    (line, message), = found(text, "HPC229")
    assert line == 6 and "add srun --ntasks-per-node=1 ch-fromhost --nvidia /tmp/pt after line 5" in message


def test_an_image_in_a_variable_is_named_quoted_in_the_advice():
    text = GPU_JOB + 'img=/tmp/$SLURM_JOB_ID/pt\nch-convert pt.sqfs "$img"\nch-run "$img" -- python t.py\n'
    (_, message), = found(text, "HPC229")
    assert 'ch-fromhost --nvidia "$img" after line 6' in message


@pytest.mark.parametrize("text", [
    # the auditor's 05-good and 05b-unknowable
    GPU_JOB + 'img=/tmp/$SLURM_JOB_ID/pytorch\nmkdir -p "/tmp/$SLURM_JOB_ID"\n'
              'ch-convert "$SCRATCH/images/pytorch_2.3.tar.gz" "$img"\nch-fromhost --nvidia "$img"\n'
              'ch-run -b "$SCRATCH/data:/data" -c /data "$img" -- python /opt/train.py\n',
    GPU_JOB + 'ch-run -b "$SCRATCH/data:/data" -c /data "$SCRATCH/images/pytorch_2.3" -- python /opt/train.py\n',
    # a SquashFS image the job made (it can only have been injected before), an existing directory
    GPU_JOB + "ch-convert pt.tar.gz /tmp/pt.sqfs\nch-run /tmp/pt.sqfs -- python train.py\n",
    GPU_JOB + "ch-convert pt.tar.gz /tmp/other\nch-run /tmp/pt -- python train.py\n",
    # other ways of injecting the driver, also under srun or in an if
    GPU_JOB + "ch-convert pt.sqfs /tmp/pt\nch-fromhost --path /usr/lib64/libcuda.so.1 /tmp/pt\n"
              "ch-run /tmp/pt -- python train.py\n",
    GPU_JOB + "ch-convert pt.sqfs /tmp/pt\nch-fromhost --cmd 'nvidia-container-cli list' /tmp/pt\n"
              "ch-run /tmp/pt -- python train.py\n",
    GPU_JOB + "srun ch-convert pt.sqfs /tmp/pt\nsrun ch-fromhost --nvidia /tmp/pt/\nsrun ch-run /tmp/pt -- python t.py\n",
    GPU_JOB + "ch-convert pt.sqfs /tmp/pt\nif command -v nvidia-smi; then\n  ch-fromhost --nvidia /tmp/pt\nfi\n"
              "ch-run /tmp/pt -- python train.py\n",
    # made only when missing: an earlier job may have made it and injected the driver
    GPU_JOB + '[ -d /tmp/pt ] || ch-convert pt.sqfs /tmp/pt\nch-run /tmp/pt -- python train.py\n',
    GPU_JOB + 'if [ ! -d /tmp/pt ]; then\n  ch-convert pt.sqfs /tmp/pt\nfi\nch-run /tmp/pt -- python train.py\n',
    # no GPU; AMD GPUs; devices added by ch-run itself (CDI, later releases)
    "#!/bin/bash\n#SBATCH --nodes=1\nch-convert pt.sqfs /tmp/pt\nch-run /tmp/pt -- python prep.py\n",
    "#!/bin/bash\n#SBATCH --gres=gpu:mi250:2\nch-convert pt.sqfs /tmp/pt\nch-run /tmp/pt -- python train.py\n",
    GPU_JOB + "ch-convert pt.sqfs /tmp/pt\nch-run --devices /tmp/pt -- python train.py\n",
    # the directory name only in a comment
    GPU_JOB + "# ch-convert pt.sqfs /tmp/pt was run once by hand\nch-run /tmp/pt -- python train.py\n",
])
def test_no_driver_finding(text):
    assert found(text, "HPC229") == []


def test_amd_gpus_by_their_partition_keep_the_driver_rule_quiet():
    text = GPU_JOB.replace("--nodes=1", "--partition=small-g") + "ch-convert pt.sqfs /tmp/pt\nch-run /tmp/pt -- python t.py\n"
    assert found(text, "HPC229") == []
    assert found(text.replace("small-g", "gpu"), "HPC229") != []


# --- HPC609: a JupyterHub single-user server in a job that drops the hub's token --------------------------------

SPAWNED = "#!/bin/bash\n#SBATCH --job-name=spawner-jupyterhub\n#SBATCH --output=jupyterhub_%j.log\n"
SERVER = "module load apptainer\napptainer exec jupyter_4.2.sif batchspawner-singleuser jupyterhub-singleuser --ip=0.0.0.0\n"


@pytest.mark.parametrize("export, body, shown", [
    # the auditor's 02-bad
    ("NONE", "#SBATCH --time=04:00:00\n#SBATCH --mem=4G\n" + SERVER, "batchspawner-singleuser (line 8)"),
    ("NIL", SERVER, "batchspawner-singleuser (line 6)"),
    ("USER,HOME,PATH", SERVER, "and those it names"),
    ("JUPYTERHUB_API_URL,JUPYTERHUB_USER", "srun jupyterhub-singleuser --ip=0.0.0.0\n", "jupyterhub-singleuser (line 5)"),
    ("NONE", "exec python3 -m jupyterhub.singleuser --ip=0.0.0.0\n", "python -m jupyterhub.singleuser (line 5)"),
    ("NONE", "if true; then\n  srun bash -c 'jupyterhub-singleuser --port=$PORT'\nfi\n", "jupyterhub-singleuser (line 6)"),
])
def test_a_hub_server_in_a_job_that_drops_the_token(export, body, shown):
    hits = found(SPAWNED + f"#SBATCH --export={export}\n" + body, "HPC609")
    assert len(hits) == 1 and hits[0][0] == 4, hits
    assert shown in hits[0][1] and "JUPYTERHUB_API_TOKEN env is required" in hits[0][1]
    assert "--export={{keepvars}}" in hits[0][1]


@pytest.mark.parametrize("text", [
    # the auditor's 02-good: the list names the token
    SPAWNED + "#SBATCH --export=JUPYTERHUB_API_TOKEN,JPY_API_TOKEN,JUPYTERHUB_CLIENT_ID,JUPYTERHUB_API_URL,USER,HOME\n"
    + SERVER,
    # batchspawner's placeholders, ALL, no --export, the token's old name
    SPAWNED + "#SBATCH --export={{keepvars}}\n" + SERVER,
    SPAWNED + "#SBATCH --export={keepvars}\n" + SERVER,
    SPAWNED + "#SBATCH --export=ALL\n" + SERVER,
    SPAWNED + "#SBATCH --export=all,FOO=1\n" + SERVER,
    SPAWNED + SERVER,
    SPAWNED + "#SBATCH --export=JPY_API_TOKEN,JUPYTERHUB_API_URL\n" + SERVER,
    # the script gives the server its token itself
    SPAWNED + "#SBATCH --export=NONE\nexport JUPYTERHUB_API_TOKEN=$(cat \"$HOME/.hub-token\")\n" + SERVER,
    # the auditor's 02b: a plain JupyterLab (whether it breaks depends on the site), and a server only named
    "#!/bin/bash\n#SBATCH --export=NONE\n#SBATCH --time=04:00:00\n#SBATCH --mem=4G\nport=$(shuf -i 20000-29999 -n 1)\n"
    "jupyter lab --no-browser --ip=\"$(hostname)\" --port=\"$port\" --ServerApp.port_retries=0\n",
    SPAWNED + "#SBATCH --export=NONE\necho 'start jupyterhub-singleuser by hand'\nwhich jupyterhub-singleuser\n",
    SPAWNED + "#SBATCH --export=NONE\n# batchspawner-singleuser jupyterhub-singleuser runs in the other job\npython t.py\n",
    # a directive sbatch ignores (after the first command)
    SPAWNED + "true\n#SBATCH --export=NONE\n" + SERVER,
])
def test_no_hub_token_finding(text):
    assert found(text, "HPC609") == []


def test_the_rules_examples_behave():
    for code in ("HPC133", "HPC229", "HPC609"):
        r = rules()[code]
        assert [f.code for f in lint(r.bad) if f.code == code] == [code]
        assert [f for f in lint(r.good) if f.code == code] == []
