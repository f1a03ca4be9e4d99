"""Session 11's checks: data staged to node-local storage by the batch script alone (HPC523), a step with more
tasks than the job and the CPUs they need (HPC322, and HPC309's share), and a monitor step reported once."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile

TWO = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
ONE = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\n#SBATCH --gres=gpu:4\n"


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC523: the batch script runs on the first node alone -----------------------------------------------------

@pytest.mark.parametrize("body, line, dest", [
    ('tar -xf "$SCRATCH/imagenet.tar" -C "$SLURM_TMPDIR"\nsrun python train.py --data "$SLURM_TMPDIR/imagenet"\n',
     5, "$SLURM_TMPDIR"),
    ("tar xzf data.tgz --directory=/tmp/data\nsrun python train.py --data /tmp/data/train\n", 5, "/tmp/data"),
    ("cp /project/img.sif /tmp/\nsrun apptainer exec --nv /tmp/img.sif python train.py\n", 5, "/tmp/"),
    ('DEST=$TMPDIR/ds\nrsync -a "$HOME/ds/" "$DEST"\nsrun python train.py --root "$DEST"\n', 6, "$TMPDIR/ds"),
    ("unzip -q data.zip -d /dev/shm/data\nsrun python train.py --data /dev/shm/data\n", 5, "/dev/shm/data"),
    ("apptainer pull /tmp/pt.sif docker://pytorch/pytorch:2.3.0\nsrun apptainer exec --nv /tmp/pt.sif python t.py\n",
     5, "/tmp/pt.sif"),
    ("ch-convert pt.sqfs /tmp/pt\nsrun ch-run /tmp/pt -- python t.py\n", 5, "/tmp/pt"),
    # the step reads it through a variable the batch shell exports
    ('cp -r data "$SLURM_TMPDIR/"\nexport DATA_DIR=$SLURM_TMPDIR/data\nsrun python train.py\n', 5, "$SLURM_TMPDIR/"),
    # inside an if: still the batch shell
    ('if [ ! -d "$SLURM_TMPDIR/d" ]; then\n  tar -xf d.tar -C "$SLURM_TMPDIR"\nfi\nsrun python t.py --data '
     '"$SLURM_TMPDIR/d"\n', 6, "$SLURM_TMPDIR"),
])
def test_a_copy_to_node_local_storage_read_by_a_step_on_several_nodes(body, line, dest):
    hits = found(TWO + body, "HPC523")
    assert len(hits) == 1 and hits[0][0] == line, hits
    assert f"writes to {dest} from the batch script" in hits[0][1] and "on 2 nodes" in hits[0][1]


@pytest.mark.parametrize("text", [
    # one node: the batch script's node is the job's node
    TWO.replace("--nodes=2", "--nodes=1") + 'tar -xf d.tar -C "$SLURM_TMPDIR"\nsrun python t.py --data "$SLURM_TMPDIR"\n',
    # copied on every node, or with sbcast
    TWO + 'srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 tar -xf d.tar -C "$SLURM_TMPDIR"\n'
          'srun python t.py --data "$SLURM_TMPDIR"\n',
    TWO + "sbcast img.sif /tmp/img.sif\nsrun apptainer exec /tmp/img.sif python t.py\n",
    # a step on one node only
    TWO + "cp img.sif /tmp/\nsrun -N 1 -n 1 apptainer exec /tmp/img.sif python prep.py\n",
    # no step reads it
    TWO + 'cp config.yaml "$SLURM_TMPDIR/"\nsrun python t.py\n',
    # shared storage, also when the script points TMPDIR there
    TWO + 'cp -r data "$SCRATCH/run"\nsrun python t.py --data "$SCRATCH/run"\n',
    TWO + 'export TMPDIR=$SCRATCH/tmp\ncp -r data "$TMPDIR/"\nsrun python t.py --data "$TMPDIR/data"\n',
    # results copied out after the step
    TWO + 'srun python t.py --out "$SLURM_TMPDIR/out"\ncp -r "$SLURM_TMPDIR/out" "$SCRATCH/"\n',
    # a function's body: it may be run by srun on every node
    TWO + 'stage() { tar -xf d.tar -C "$SLURM_TMPDIR"; }\nexport -f stage\n'
          'srun --ntasks-per-node=1 bash -c stage\nsrun python t.py --data "$SLURM_TMPDIR"\n',
    # tar that only lists or creates
    TWO + 'tar -cf "$SLURM_TMPDIR/x.tar" src\nsrun python t.py --data "$SLURM_TMPDIR"\n',
])
def test_copies_that_every_node_has_or_nobody_reads_are_left_alone(text):
    assert found(text, "HPC523") == []


def test_the_fix_runs_the_copy_on_every_node_and_then_lint_is_quiet():
    text = TWO + 'tar -xf "$SCRATCH/d.tar" -C "$SLURM_TMPDIR"\nsrun python train.py --data "$SLURM_TMPDIR/d"\n'
    fixed, _ = fix_script(text)
    assert 'srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 tar -xf "$SCRATCH/d.tar" -C "$SLURM_TMPDIR"\n' \
        in fixed
    assert found(fixed, "HPC523") == []


@pytest.mark.parametrize("body", [
    # the folder a mkdir made on the first node would be missing on the others
    'mkdir -p "$SLURM_TMPDIR/d"\ntar -xf d.tar -C "$SLURM_TMPDIR/d"\nsrun python t.py --data "$SLURM_TMPDIR/d"\n',
    # part of an && chain: srun in front of the second command alone would split the chain
    'cd "$SCRATCH" && tar -xf d.tar -C "$SLURM_TMPDIR"\nsrun python t.py --data "$SLURM_TMPDIR"\n',
    # an image: pulling on every node is not the advice, shared storage is
    "apptainer pull /tmp/pt.sif docker://pytorch/pytorch:2.3.0\nsrun apptainer exec /tmp/pt.sif python t.py\n",
])
def test_no_mechanical_fix_where_srun_in_front_would_not_do(body):
    hits = [f for f in lint(TWO + body) if f.code == "HPC523"]
    assert len(hits) == 1 and hits[0].fix is None


# --- HPC322 and HPC309: a step with more tasks than the job ------------------------------------------------------

def test_more_tasks_than_the_job_is_an_error_that_shares_out_the_cpus():
    text = ONE + "srun -n 4 apptainer exec --nv img_1.sif python train.py\n"
    hits = found(text, "HPC322")
    assert len(hits) == 1 and "32 CPUs of the job's 8" in hits[0][1] and "--cpus-per-task=2" in hits[0][1]
    assert found(text, "HPC309") == []  # its advice (-c 8) would make it worse
    fixed, done = fix_script(text)
    assert [f.code for f in done] == ["HPC322"]
    assert "srun --cpus-per-task=2 -n 4 apptainer" in fixed
    assert found(fixed, "HPC322") == [] and found(fixed, "HPC309") == []


@pytest.mark.parametrize("head, step, need", [
    # more tasks than CPUs: fails on every version, and there is no share to give
    ("#!/bin/bash\n#SBATCH --ntasks=2\n", "srun -n 8 python t.py\n", "8 CPUs of the job's 2"),
    # the step's own -c is too large for the job
    ("#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\n", "srun -n 2 -c 8 python t.py\n",
     "16 CPUs of the job's 8"),
    # the count through the script's variable
    ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=16\nN=8\n",
     "srun --ntasks=$N python t.py\n", "128 CPUs of the job's 32"),
])
def test_steps_that_cannot_start(head, step, need):
    hits = found(head + step, "HPC322")
    assert len(hits) == 1 and need in hits[0][1]


@pytest.mark.parametrize("text", [
    ONE + "srun -n 4 -c 2 python t.py\n",                                  # its share
    ONE.replace("--ntasks=1", "--ntasks=4") + "srun -n 4 python t.py\n",   # what the job asked for
    ONE.replace("#SBATCH --nodes=1\n", "#SBATCH --nodes=1\n#SBATCH --exclusive\n") + "srun -n 4 python t.py\n",
    ONE.replace("#SBATCH --nodes=1\n", "#SBATCH --nodes=1\n#SBATCH --overcommit\n") + "srun -n 4 python t.py\n",
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\nsrun -n 4 python t.py\n",  # tasks from the command line
])
def test_steps_that_fit_the_job_are_left_alone(text):
    assert found(text, "HPC322") == []


def test_on_old_slurm_a_step_that_fits_is_told_its_share():
    """Slurm 22.05 (the local profile) gives each task of srun -n 4 one CPU: it starts, and HPC309 names the
    share of the job's 8 CPUs, not the job's --cpus-per-task."""
    text = ONE + "srun -n 4 python t.py\n"
    profile = load_profile("local")
    assert found(text, "HPC322", profile) == []
    hits = found(text, "HPC309", profile)
    assert len(hits) == 1 and "shares the job's 8 CPUs, 2 a task" in hits[0][1] \
        and "--cpus-per-task=2 to srun" in hits[0][1]


# --- a monitor step: HPC522 alone -----------------------------------------------------------------------------

def test_a_monitor_step_is_reported_once_and_needs_no_cpus():
    text = ONE + "srun nvidia-smi dmon -s u -d 30 > gpu.log &\nsrun python train.py\n"
    codes = [(f.line, f.code) for f in lint(text) if f.severity != "info"]
    assert (6, "HPC522") in codes
    assert not [c for line, c in codes if line == 6 and c in ("HPC518", "HPC309")], codes


def test_an_overlapping_step_is_not_asked_for_cpus():
    text = ONE + "srun --overlap --pty bash\n"
    assert found(text, "HPC309") == []


# --- an audit of real scripts from HPC centres -----------------------------------------------------------------

MULTI = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"


@pytest.mark.parametrize("python", ["python -u", "python3 -u", "python -X faulthandler", "python -um", "python3.11",
                                    "python -O -W ignore", "/usr/bin/python3 -u"])
def test_torchrun_started_through_python_with_options_is_still_a_launcher(python):
    """A JSC script started python -u -m torch.distributed.run: the interpreter's options do not change what runs,
    so every torchrun rule applies; no fix (it would drop them)."""
    spelled = (python if python.endswith("-um") else python + " -m") + " torch.distributed.run"
    text = MULTI + f"srun {spelled} --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d " \
                   "--rdzv_endpoint=localhost:29500 train.py\n"
    found_ = {f.code: f for f in lint(text)}
    assert {"HPC101", "HPC103"} <= set(found_), [f.format() for f in found_.values()]
    assert found_["HPC101"].fix is None


@pytest.mark.parametrize("words, module, skipped", [
    ("python -u -m torch.distributed.run t.py", ["python", "-m", "torch.distributed.run", "t.py"], ("-u",)),
    ("python -X dev -Wignore -m m", ["python", "-m", "m"], ("-X", "dev", "-Wignore")),
    ("python3.12 -m m a", ["python3", "-m", "m", "a"], ("python3.12",)),
    ("python -uB -mpkg", ["python", "-m", "pkg"], ("-uB",)),
])
def test_python_module_reads_past_the_interpreters_options(words, module, skipped):
    from hpcwidgets.parse.script import python_module
    assert python_module(words.split()) == (module, skipped)


@pytest.mark.parametrize("words", ["python -m m", "python train.py", "python -c 'x'", "python -u train.py",
                                   "python --version", "pythonista -m m"])
def test_python_module_leaves_other_commands_alone(words):
    from hpcwidgets.parse.script import python_module
    assert python_module(words.split()) is None


def test_a_blank_after_the_backslash_ends_the_command():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv \\\n    /scratch/img.sif \\ \n"
            "    python train.py\n")
    hits = [f for f in lint(text) if f.code == "HPC504"]
    assert [f.line for f in hits] == [4] and "backslash and then a blank" in hits[0].message
    fixed, _ = fix_script(text)
    assert "    /scratch/img.sif \\\n    python" in fixed
    assert not [f for f in lint(fixed) if f.code == "HPC504"]


@pytest.mark.parametrize("text", [
    "#!/bin/bash\nmv my\\ file.txt dest\\ \necho done\n",          # an escaped blank, then a new command
    "#!/bin/bash\napptainer exec img.sif \\ # comment\n  python t.py\n",  # HPC504's other message
])
def test_a_backslash_blank_that_ends_nothing_or_is_reported_otherwise(text):
    assert not [f for f in lint(text) if f.code == "HPC504" and "and then a blank" in f.message]


@pytest.mark.parametrize("expr", ["--node-rank=$((SLURM_NODEID))", "--node-rank=$(( SLURM_NODEID + 0 ))",
                                  "--rdzv-conf=is_host=$(if ((SLURM_NODEID)); then echo 0; else echo 1; fi)"])
def test_a_per_task_variable_in_the_batch_shells_arithmetic(expr):
    text = MULTI.replace("=4\n#SBATCH --gres", "=1\n#SBATCH --gres") + \
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n' \
        f"srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 {expr} t.py\n"
    assert found(text, "HPC502")


def test_arithmetic_each_task_expands_is_left_alone():
    text = MULTI.replace("=4\n#SBATCH --gres", "=1\n#SBATCH --gres") + \
        'srun bash -c "torchrun --nnodes=2 --nproc_per_node=4 --rdzv_conf=is_host=\\$(((SLURM_NODEID)) && echo 0 || ' \
        'echo 1) --rdzv_backend=c10d --rdzv_endpoint=h:29500 train.py"\n'
    assert found(text, "HPC502") == []


def test_one_task_gets_the_batch_shells_value():
    text = "#!/bin/bash\n#SBATCH --ntasks=1\nsrun python train.py --rank $SLURM_PROCID\n"
    assert found(text, "HPC502") == []
    assert found(text.replace("srun python", "srun -n 2 python"), "HPC502")
    assert found(text.replace("--ntasks=1", "--ntasks=2"), "HPC502")


def test_a_serial_array_that_appends_to_one_log_is_left_alone():
    head = "#!/bin/bash\n#SBATCH --array=1-30%1\n#SBATCH --output=logs/run-%A.out\n"
    body = "python train.py --resume\n"
    assert found(head + "#SBATCH --open-mode=append\n" + body, "HPC318") == []
    assert found(head + body, "HPC318")  # each task truncates the file
    assert found(head.replace("%1", "%4") + "#SBATCH --open-mode=append\n" + body, "HPC318")  # four interleave


def test_an_empty_bind_variable_is_not_the_whole_file_system():
    text = "#!/bin/bash\nPROJECT_DIR=\napptainer exec --bind=$PROJECT_DIR img.sif python t.py\n"
    assert found(text, "HPC204") == []
    assert found(text.replace("PROJECT_DIR=\n", "PROJECT_DIR=/\n"), "HPC204")


def test_a_gpu_container_under_mpirun_makes_the_other_step_a_helper():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --ntasks=1\nsingularity exec img.sif python3 init.py\n"
            "mpirun -n 1 singularity exec --nv img.sif python3 run.py\n")
    assert found(text, "HPC201") == []
    assert found(text, "HPC220")
    assert found(text.replace(" --nv", ""), "HPC201")


JUPYTER = ('#!/bin/bash\n#SBATCH --time=01:00:00\nport=$(shuf -i 8000-9999 -n 1)\nnode=$(hostname -s)\n'
           'echo "ssh -N -L ${port}:${node}:${port} ${USER}@login.example.edu"\n'
           'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\n')


@pytest.mark.parametrize("server, said", [
    ("jupyter-notebook --no-browser --port=8888 --ip=${node} --NotebookApp.port_retries=0", "--port=8888"),
    ("jupyter lab --no-browser --ip=$node --ServerApp.port_retries=0", "no --port"),
    ("jupyter lab --no-browser --ip=$node --port $PORT --ServerApp.port_retries=0", "--port=$PORT"),
])
def test_a_tunnel_to_another_port_than_the_servers(server, said):
    hits = found(JUPYTER + server + "\n", "HPC608")
    assert len(hits) == 1 and "forwards to port $port" in hits[0][1] and said in hits[0][1]


@pytest.mark.parametrize("server", [
    "jupyter lab --no-browser --ip=$node --port=$port --ServerApp.port_retries=0",
    'jupyter lab --no-browser --ip=$node --port="${port}" --ServerApp.port_retries=0',
    "apptainer exec img.sif jupyter lab --no-browser --ip=$node --port $port --ServerApp.port_retries=0",
])
def test_a_tunnel_to_the_servers_port_is_left_alone(server):
    assert found(JUPYTER + server + "\n", "HPC608") == []


def test_the_shipped_jupyter_job_tunnels_to_its_own_port():
    from hpcwidgets.examples import examples
    from hpcwidgets.lint.jupyter import _TUNNEL_FORWARD
    text = examples("generic")["jupyter"].render()
    assert [m.group(2) for m in _TUNNEL_FORWARD.finditer(text)] == ["$jl_port"]  # the check has a tunnel to compare
    assert found(text, "HPC608") == []


# --- mistakes from issue threads -------------------------------------------------------------------------------

def test_programs_started_with_and_and_no_wait_are_killed_with_the_job():
    text = ("#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=28\nfor f in data/*.fq.gz; do\n"
            '  salmon quant -i index -r "$f" -p 4 -o "quant/$(basename "$f")" &\ndone\n')
    hits = found(text, "HPC519")
    assert len(hits) == 1 and "salmon … &" in hits[0][1] and "kills the programs" in hits[0][1]
    fixed, _ = fix_script(text)
    assert fixed.rstrip().endswith("done\nwait") and found(fixed, "HPC519") == []


@pytest.mark.parametrize("text", [
    # a monitor, then the work in the foreground
    "#!/bin/bash\nnvidia-smi dmon -d 30 > gpu.log &\npython train.py\n",
    # a monitor left running at the end: meant to end with the job
    "#!/bin/bash\npython train.py\nnvidia-smi -l 10 > gpu.log &\n",
    # waited for
    "#!/bin/bash\nfor s in 1 2; do python t.py --seed $s & done\nwait\n",
    # a server, then the work
    "#!/bin/bash\ntensorboard --logdir runs &\npython train.py\n",
    # in a function nobody runs with &
    "#!/bin/bash\nf() { python a.py & }\necho ok\n",
])
def test_background_programs_that_end_with_the_job_on_purpose_or_are_waited_for(text):
    assert found(text, "HPC519") == []


@pytest.mark.parametrize("gres, value, profile, said", [
    ("gpu:4", "4,5,6,7", None, "numbered 0-3"),
    ("gpu:2", "0,1", "generic", "another job's GPUs"),
    ("gpu:1", "0,1,2,3", None, "names 4 GPUs"),
])
def test_a_fixed_list_of_gpus_that_is_not_the_jobs(gres, value, profile, said):
    text = f"#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres={gres}\nexport CUDA_VISIBLE_DEVICES={value}\n" \
           "python t.py\n"
    hits = found(text, "HPC513", load_profile(profile) if profile else None)
    assert len(hits) == 1 and said in hits[0][1]


@pytest.mark.parametrize("text, profile", [
    # no profile: the node may have just these GPUs
    ("#!/bin/bash\n#SBATCH --gres=gpu:2\nexport CUDA_VISIBLE_DEVICES=0,1\npython t.py\n", None),
    # a whole node of its own
    ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --exclusive\n#SBATCH --gres=gpu:2\n"
     "export CUDA_VISIBLE_DEVICES=0,1\npython t.py\n", "generic"),
    # all the node's GPUs
    ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:4\nexport CUDA_VISIBLE_DEVICES=0,1,2,3\npython t.py\n",
     "generic"),
])
def test_a_fixed_list_that_is_the_jobs_gpus_is_left_alone(text, profile):
    assert found(text, "HPC513", load_profile(profile) if profile else None) == []


def test_mpi_inside_a_charliecloud_container_is_told_the_charliecloud_way():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n"
            "ch-run -w ./img -- mpiexec -n 4 /opt/app/solver\n")
    hits = found(text, "HPC214")
    assert len(hits) == 1 and "ch-run IMAGE -- program" in hits[0][1] and "apptainer" not in hits[0][1]


def test_the_apptainer_cache_advice_names_the_temporary_folder_too():
    text = '#!/bin/bash\napptainer pull "$SCRATCH/x.sif" docker://alpine:3.20\n'
    hits = found(text, "HPC207")
    assert len(hits) == 1 and "APPTAINER_TMPDIR" in hits[0][1]
    told = found('#!/bin/bash\nexport APPTAINER_TMPDIR=$SCRATCH/tmp\n' + text.split("\n", 1)[1], "HPC207")
    assert len(told) == 1 and "APPTAINER_TMPDIR" not in told[0][1]  # already set: the cache alone


def test_a_variable_in_an_sbatch_line_is_told_the_way_that_works_for_that_option():
    account = found("#!/bin/bash\n#SBATCH --account=$proj\npython t.py\n", "HPC305")
    assert len(account) == 1 and "%u" not in account[0][1] and "sbatch --account=" in account[0][1]
    output = found("#!/bin/bash\n#SBATCH --output=$HOME/x.out\npython t.py\n", "HPC305")
    assert len(output) == 1 and "%j" in output[0][1]


def test_a_literal_backtick_in_single_quotes_is_not_shell_text():
    assert found("#!/bin/bash\napptainer exec --bind '/data/run`1`:/data' x.sif python t.py\n", "HPC514") == []
    assert found("#!/bin/bash\npython t.py --tag '`date`'\n", "HPC514")


# --- every component of a heterogeneous job ----------------------------------------------------------------------

HET = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"
       "#SBATCH hetjob\n{second}srun --het-group=0 python a.py : --het-group=1 python b.py\n")


@pytest.mark.parametrize("second, code, line, said", [
    ("#SBATCH --partition=cpu\n#SBATCH --mem=16X\n", "HPC302", 8, "component 1 of the heterogeneous job: '16X'"),
    ("#SBATCH --partition=cpu\n#SBATCH --time=1:30\n", "HPC320", 8, "--time=1:30"),
    ("#SBATCH --partition=cpu\n#SBATCH --mem=32\n", "HPC319", 8, "--mem=32 has no unit"),
    ("#SBATCH --partition=nosuchpart\n", "HPC401", 7, "component 1 of the heterogeneous job"),
    ("#SBATCH --partition=gpu\n#SBATCH --gres=gpu:64\n", "HPC403", 8, "component 1"),
    ("#SBATCH --partition=cpu\n#SBATCH --gres=gpu:1\n", "HPC407", 7, "component 1"),
])
def test_a_later_component_is_checked_like_the_first(second, code, line, said):
    hits = [(f.line, f.message) for f in lint(HET.format(second=second), load_profile("generic")) if f.code == code]
    assert len(hits) == 1 and hits[0][0] == line and said in hits[0][1], hits


def test_a_correct_later_component_gets_nothing():
    text = HET.format(second="#SBATCH --partition=cpu\n#SBATCH --nodes=1\n#SBATCH --mem=16G\n#SBATCH --time=00:30:00\n")
    assert [f.format() for f in lint(text, load_profile("generic")) if f.severity != "info"] == []


# --- HPC527: the job's state is its last command's -----------------------------------------------------------

def test_a_step_followed_by_echo_hides_its_failure():
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsrun python train.py --epochs 3\necho \"done at $(date)\"\n"
    hits = [f for f in lint(text) if f.code == "HPC527"]
    assert len(hits) == 1 and hits[0].line == 3 and "echo on line 4" in hits[0].message
    fixed, _ = fix_script(text)
    assert "srun python train.py --epochs 3 || exit $?\n" in fixed and found(fixed, "HPC527") == []


@pytest.mark.parametrize("text", [
    "#!/bin/bash\nset -euo pipefail\nsrun python t.py\necho done\n",
    "#!/bin/bash -le\nsrun python t.py\necho done\n",
    "#!/bin/bash\nset -o errexit\nsrun python t.py\necho done\n",
    "#!/bin/bash\nsrun python t.py\nstatus=$?\necho done\nexit $status\n",
    "#!/bin/bash\nsrun python t.py\n",                       # the step's status is the job's
    "#!/bin/bash\nsrun python t.py\npython report.py\n",     # a command that may fail: its status counts then
    "#!/bin/bash\nsrun python t.py || exit 1\necho done\n",
    "#!/bin/bash\ntrap 'echo failed' ERR\nsrun python t.py\necho done\n",
])
def test_scripts_that_pass_the_status_on_are_left_alone(text):
    assert found(text, "HPC527") == []


def test_the_shipped_examples_pass_their_status_on():
    from hpcwidgets.examples import examples
    for name, example in examples("generic").items():
        assert found(example.render(), "HPC527") == [], name


# --- HPC528: tasks asked for, one program run in the batch shell -------------------------------------------------

TASKS = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"


@pytest.mark.parametrize("body", [
    "python train.py --devices 4\n",
    "apptainer exec --nv img.sif python train.py --devices 4\n",
    "python prepare.py\npython3 train.py --devices 4\n",
    "python -m mypkg.train --devices 4\n",
])
def test_several_tasks_and_python_run_once(body):
    hits = found(TASKS + body, "HPC528")
    assert len(hits) == 1 and "waits for 3 ranks" in hits[0][1]
    assert hits[0][0] == 4 + body.count("\n")  # the last program: the training


@pytest.mark.parametrize("text", [
    TASKS + "srun python train.py\n",
    TASKS + "srun python prepare.py\npython train.py\n",  # the script starts tasks with srun elsewhere
    TASKS + "mpirun -np 4 python train.py\n",
    TASKS + "torchrun --nproc-per-node=4 train.py\n",     # a launcher starts its own workers
    TASKS + "python -m pip install --user x\n",
    TASKS.replace("--ntasks-per-node=4", "--ntasks-per-node=1") + "python train.py\n",
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks=2\npython train.py\n",  # one task per node
])
def test_one_task_per_node_or_tasks_started_are_left_alone(text):
    assert found(text, "HPC528") == []


# --- review follow-ups ---------------------------------------------------------------------------------------------

def test_model_problems_for_options_in_the_wrong_place():
    from hpcwidgets.spec.apptainer import ApptainerInstance, ApptainerRun
    assert [p.field for p in ApptainerRun(image="x.sif", command=("--nv", "python")).problems()] == ["command"]
    assert ApptainerRun(image="x.sif", action="run", command=("--epochs", "3")).problems() == []  # the runscript's
    stop = ApptainerInstance(action="instance stop", nv=True, name="db").problems()
    assert len(stop) == 1 and "belongs to instance start" in stop[0].message


def test_a_negative_node_count_gets_one_problem_not_impossible_advice():
    from hpcwidgets.examples import examples
    wf = examples("generic")["multi-node-torchrun"].model
    problems = wf.replace(job=wf.job.replace(nodes=-3)).problems()
    assert [p.field for p in problems] == ["job.nodes"]


def test_windows_line_endings_name_the_file():
    hits = [f for f in lint("#!/bin/bash\r\npython t.py\r\n", path="my job.sh") if f.code == "HPC314"]
    assert len(hits) == 1 and "dos2unix 'my job.sh'" in hits[0].message


# --- HPC126: a deepspeed hostfile the job does not write ------------------------------------------------------------

DS = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"


def test_a_fixed_hostfile_names_nodes_of_some_other_job():
    text = DS + "deepspeed --num_gpus 4 --num_nodes 2 --hostfile config/hostfile train.py --deepspeed ds.json\n"
    hits = found(text, "HPC126")
    assert len(hits) == 1 and "does not write config/hostfile" in hits[0][1]


@pytest.mark.parametrize("text", [
    DS + 'scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/$/ slots=4/" > hostfile\n'
         "deepspeed --hostfile hostfile train.py\n",
    DS + 'HOSTFILE=hosts-$SLURM_JOB_ID\nfor h in $(scontrol show hostnames); do echo "$h slots=4" >> $HOSTFILE; done\n'
         "deepspeed --hostfile $HOSTFILE train.py\n",
    DS + "python make_hostfile.py my_hostfile\ndeepspeed --hostfile my_hostfile train.py\n",
    DS + "deepspeed --hostfile /job/hostfile train.py\n",
    # one node: "localhost slots=4" written once is right
    DS.replace("--nodes=2", "--nodes=1") + "deepspeed --hostfile config/hostfile train.py\n",
])
def test_hostfiles_the_job_makes_or_may_make_are_left_alone(text):
    assert found(text, "HPC126") == []


# --- an audit of the new checks on correct scripts -------------------------------------------------------------------

def test_a_launcher_string_run_through_bash_c_with_python_options_is_torchrun():
    """OLMo-style LAUNCHER="python -u -m torch.distributed.run … --node_rank $SLURM_NODEID … c10d" then
    srun bash -c "$LAUNCHER train.py": c10d ignores the node rank (HPC105), it is no HPC502 error."""
    text = MULTI.replace("=4\n#SBATCH --gres", "=1\n#SBATCH --gres") + \
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n' \
        'LAUNCHER="python -u -m torch.distributed.run --nproc_per_node 4 --nnodes 2 --node_rank $SLURM_NODEID ' \
        '--rdzv_id $SLURM_JOB_ID --rdzv_backend c10d --rdzv_endpoint $MASTER_ADDR:29500"\n' \
        'srun bash -c "$LAUNCHER train.py"\n'
    codes = {f.code for f in lint(text)}
    assert "HPC105" in codes and "HPC502" not in codes


LUMI = ("#!/bin/bash -l\n#SBATCH --partition=standard-g\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=8\n"
        "#SBATCH --gpus-per-node=8\ncat << 'EOF' > select_gpu\n#!/bin/bash\nexport ROCR_VISIBLE_DEVICES=$SLURM_LOCALID\n"
        "{more}exec \"$@\"\nEOF\nchmod +x select_gpu\nsrun ./select_gpu python worker.py\n")


def test_a_gpu_wrapper_written_by_a_here_document_is_read_for_hpc524():
    hits = found(LUMI.format(more="export HIP_VISIBLE_DEVICES=$SLURM_LOCALID\n"), "HPC524")
    assert len(hits) == 1 and hits[0][0] == 6 and "in select_gpu, which srun runs on line 13" in hits[0][1]
    assert found(LUMI.format(more=""), "HPC524") == []  # LUMI's own wrapper: ROCR alone


def test_a_node_local_folder_bound_elsewhere_is_not_at_its_own_path():
    text = ('#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv -B "$SLURM_TMPDIR/data:/data" img.sif '
            'python train.py --data "$SLURM_TMPDIR/data"\n')
    hits = found(text, "HPC226")
    assert len(hits) == 1 and "is bound at /data in the container" in hits[0][1]
    assert found(text.replace('--data "$SLURM_TMPDIR/data"', "--data /data"), "HPC226") == []


def test_a_variable_that_reaches_the_program_as_an_argument_is_passed_on():
    text = ('#!/bin/bash\nexport HF_HOME="$SCRATCH/hf"\napptainer exec --cleanenv -B "$SCRATCH" img.sif '
            'python download.py --cache-dir "$HF_HOME"\n')
    assert found(text, "HPC227") == []
    assert found(text.replace(' --cache-dir "$HF_HOME"', ""), "HPC227")


def test_module_under_bin_sh_is_advice_that_names_where_it_breaks():
    hits = [f for f in lint("#!/bin/sh\n#SBATCH --time=10\nmodule load gcc\n./run\n") if f.code == "HPC525"]
    assert len(hits) == 1 and hits[0].severity == "info" and "unless /bin/sh is bash" in hits[0].message


@pytest.mark.parametrize("make, field", [
    (lambda: __import__("hpcwidgets.spec.apptainer", fromlist=["x"]).ApptainerRun(image="--bogus",
                                                                                   command=("python",)), "image"),
    (lambda: __import__("hpcwidgets.spec.apptainer", fromlist=["x"]).ApptainerBuild(output="out.sif",
                                                                                     source="--fakeroot"), "source"),
    (lambda: __import__("hpcwidgets.spec.charliecloud", fromlist=["x"]).ChRun(image="-x", command=("python",)),
     "image"),
    (lambda: __import__("hpcwidgets.spec.charliecloud", fromlist=["x"]).ChImagePull(source="-1"), "source"),
])
def test_an_operand_that_starts_with_a_dash_is_read_as_an_option(make, field):
    """A form's image or source field holding '-x' would be written where the runtime reads options."""
    problems = make().problems()
    assert [p.field for p in problems if "starts with '-'" in p.message] == [field]


# --- HPC529: the one wait returns when the trap runs ---------------------------------------------------------------

TRAP = ("#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --signal=B:USR1@300\n{trap}\nsrun python train.py &\npid=$!\n"
        "{wait}")


def test_a_trap_that_only_signals_the_step_and_one_wait_ends_the_job():
    text = TRAP.format(trap="trap 'kill -USR1 \"$pid\"' USR1", wait="wait\n")
    hits = found(text, "HPC529")
    assert len(hits) == 1 and hits[0][0] == 7 and "wait returns as soon as the trap has run" in hits[0][1]


@pytest.mark.parametrize("trap, wait", [
    ("trap 'kill -USR1 \"$pid\"' USR1", 'wait "$pid"\nwhile kill -0 "$pid" 2>/dev/null; do wait "$pid"; done\n'),
    ("trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1", "wait\n"),             # ends the job on purpose
    ("on_usr1() { touch STOP; exit 0; }\ntrap on_usr1 USR1", "wait\n"),       # a handler function that exits
    ("trap 'touch STOP' USR1", "wait\nwait\n"),                               # waits again
])
def test_traps_that_end_the_job_or_wait_again_are_left_alone(trap, wait):
    assert found(TRAP.format(trap=trap, wait=wait), "HPC529") == []


def test_the_signal_rules_good_examples_wait_until_the_step_ends():
    from hpcwidgets.lint import rules
    for code in ("HPC123", "HPC511", "HPC517"):
        assert found(rules()[code].good, "HPC529") == [], code


@pytest.mark.parametrize("server, said", [
    ("jupyter lab --no-browser --port=$port", "no --ip"),
    ("jupyter lab --no-browser --ip=127.0.0.1 --port=$port", "--ip=127.0.0.1"),
])
def test_a_tunnel_to_the_nodes_name_and_a_server_on_localhost(server, said):
    hits = found(JUPYTER + server + " --ServerApp.port_retries=0\n", "HPC608")
    assert len(hits) == 1 and "loopback only" in hits[0][1] and said in hits[0][1]


def test_a_tunnel_through_the_node_to_its_localhost_reaches_a_local_server():
    text = JUPYTER.replace("-L ${port}:${node}:${port} ${USER}@login.example.edu",
                           "-J ${USER}@login.example.edu -L ${port}:localhost:${port} ${USER}@${node}")
    assert found(text + "jupyter lab --no-browser --port=$port --ServerApp.port_retries=0\n", "HPC608") == []


def test_a_task_id_variable_in_output_is_told_its_pattern_once():
    text = "#!/bin/bash\n#SBATCH --array=0-3\n#SBATCH --output=logs/run_${SLURM_ARRAY_TASK_ID}.out\npython t.py\n"
    hits = found(text, "HPC305")
    assert len(hits) == 1 and "the pattern sbatch fills in for it: %a" in hits[0][1]
    assert found(text, "HPC318") == []


# --- HPC323 and HPC528's other runtimes ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, hit", [("32", True), ("8", False), ('"$SLURM_CPUS_PER_TASK"', False), ("4", False)])
def test_more_openmp_threads_than_the_tasks_cpus(value, hit):
    text = f"#!/bin/bash\n#SBATCH --ntasks=4\n#SBATCH --cpus-per-task=8\nexport OMP_NUM_THREADS={value}\nsrun ./solver\n"
    hits = found(text, "HPC323")
    assert bool(hits) == hit and (not hit or "32 threads take turns on 8" in hits[0][1])


def test_threads_on_a_whole_node_or_without_a_count_are_left_alone():
    assert found("#!/bin/bash\n#SBATCH --exclusive\n#SBATCH --cpus-per-task=8\nexport OMP_NUM_THREADS=64\n./a\n",
                 "HPC323") == []
    assert found("#!/bin/bash\n#SBATCH --ntasks=1\nexport OMP_NUM_THREADS=16\n./a\n", "HPC323") == []


def test_a_python_client_of_ipyparallel_runs_once_on_purpose():
    text = TASKS + "ipcluster start -n 4 --daemonize\nsleep 30\npython client.py\n"
    assert found(text, "HPC528") == []
