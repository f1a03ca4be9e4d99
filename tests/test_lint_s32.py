"""Session 32: what the audits of public job scripts found, and the review's mends. Apptainer reads ``SRC:ro`` as a
bind to a container path named ``ro`` (HPC219 now says so and names the fix, and read-back keeps the bind as written);
ch-run's ``:ro`` is HPC219's alone; one shared walk over the wrappers srun runs (HPC502, HPC524)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse.argv import parse_argv
from hpcwidgets.spec.common import Bind


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- Apptainer's SRC:ro -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bind, fix", [
    ("/scratch/me:rw", "/scratch/me:/scratch/me:rw"),
    ("/data:ro", "/data:/data:ro"),
    ('"$SCRATCH/in:ro"', "$SCRATCH/in:$SCRATCH/in:ro"),
    ("/a,/data:ro", "/data:/data:ro"),
])
def test_hpc219_reports_options_written_where_apptainer_reads_the_container_path(bind, fix):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\napptainer exec -B {bind} img.sif python3 fit.py\n"
    messages = [m for _, m in found(text, "HPC219")]
    assert len(messages) == 1
    assert "destination must be an absolute path" in messages[0] and messages[0].endswith(f"write {fix}")


@pytest.mark.parametrize("bind", ["/data:/data:ro", "/data", "/data:/in", "/a:/b:ro,image-src=/", "/data:/data:rw"])
def test_hpc219_leaves_apptainer_binds_with_their_options_in_third_place_alone(bind):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\napptainer exec -B {bind} img.sif python3 fit.py\n"
    assert found(text, "HPC219") == []


def test_read_back_keeps_the_bind_as_apptainer_reads_it():
    model = parse_argv(["apptainer", "exec", "-B", "/data:ro", "img.sif", "python3", "fit.py"]).model
    assert [(b.src, str(b.dst), b.mode) for b in model.binds] == [("/data", "ro", "")]
    assert [p.message.split(":")[0:2] for p in model.problems()] == [["/data", "ro binds /data at a container path named 'ro'"]]
    # typed into hpcwidgets (the form, the command line), SRC:ro is the mode, written out in full
    typed = Bind.from_token("/data:ro")
    assert (typed.src, typed.dst, typed.mode) == ("/data", "", "ro") and typed.problems() == []


def test_a_ch_run_bind_mode_is_reported_once_by_hpc219_not_again_by_hpc205():
    text = "#!/bin/bash\nch-run -b /scratch/me:ro ./img -- python3 /opt/fit.py\n"
    assert len(found(text, "HPC219")) == 1 and found(text, "HPC205") == []


# --- HPC549: a scheduler file mktemp makes ----------------------------------------------------------------------------

_DASK = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
SCHED={made}
srun -N1 -n1 --overlap dask scheduler --scheduler-file "$SCHED" &
srun -N2 --ntasks-per-node=1 dask worker --scheduler-file "$SCHED" &
python analysis.py --scheduler-file "$SCHED"
"""


@pytest.mark.parametrize("made", ["$(mktemp)", "$(mktemp --suffix=.json)", "$(mktemp -t sched.XXXX)",
                                  "$(mktemp --tmpdir sched.XXXX.json)", '"$(mktemp -q)"'])
def test_hpc549_reads_a_file_mktemp_makes_in_tmpdir_as_node_local(made):
    reported = found(_DASK.format(made=made), "HPC549")
    assert [line for line, _ in reported] == [7]
    assert "$(mktemp) is on node-local storage ($TMPDIR, else /tmp" in reported[0][1]


@pytest.mark.parametrize("made", ['$(mktemp -p "$SLURM_SUBMIT_DIR")', "$(mktemp sched.XXXX)",
                                  "$(mktemp --tmpdir=/scratch/me)", '$(mktemp "$HOME/s.XXXX")'])
def test_hpc549_leaves_a_file_mktemp_makes_elsewhere_alone(made):
    assert found(_DASK.format(made=made), "HPC549") == []


# --- Jupyter tokens (audit G) -----------------------------------------------------------------------------------------

_SERVER = 'jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0'


@pytest.mark.parametrize("setting", ["--ServerApp.token=somepassword", "--NotebookApp.token=hunter2",
                                     "--LabApp.token=abc", "--IdentityProvider.token letmein"])
def test_hpc602_reports_a_fixed_token_on_the_servers_command_line(setting):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n{_SERVER} {setting}\n"
    [(line, message)] = found(text, "HPC602")
    assert line == 3 and "is a fixed Jupyter token written in the script" in message


@pytest.mark.parametrize("setting", ["--NotebookApp.token=${USER}", '--ServerApp.token="$USER-$SLURM_JOB_ID"',
                                     "--ServerApp.token=$(whoami)"])
def test_hpc602_reports_a_token_made_of_what_everyone_sees(setting):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n{_SERVER} {setting}\n"
    [(_, message)] = found(text, "HPC602")
    assert "every user of the cluster can see" in message


@pytest.mark.parametrize("value", ["$USER", '"${USER}_${SLURM_JOB_ID}"', "jl-$(hostname -s)"])
def test_hpc602_reports_a_guessable_jupyter_token_variable(value):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\nexport JUPYTER_TOKEN={value}\n{_SERVER}\n"
    [(line, message)] = found(text, "HPC602")
    assert line == 3 and message.startswith(f"JUPYTER_TOKEN=") and "work it out" in message


@pytest.mark.parametrize("value", ["$(openssl rand -hex 24)", '"$tok"', '"$(python3 -c \'import secrets; '
                                   'print(secrets.token_hex(24))\')"', '"$USER$(openssl rand -hex 16)"'])
def test_hpc602_leaves_a_token_made_when_the_job_runs_alone(value):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\nexport JUPYTER_TOKEN={value}\n{_SERVER}\n"
    assert found(text, "HPC602") == []


def test_hpc607_reports_the_scripts_own_token_printed_into_the_log_when_the_server_takes_it_as_an_option():
    text = ("#!/bin/bash\n#SBATCH --time=01:00:00\nTOKEN=$(openssl rand -hex 24)\n"
            'echo "open http://localhost:8888/?token=$TOKEN"\n'
            f'{_SERVER} --ServerApp.token="$TOKEN"\n')
    [(line, message)] = found(text, "HPC607")
    assert line == 4 and "($TOKEN)" in message
    private = text.replace("TOKEN=$(", 'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\nTOKEN=$(', 1)
    assert found(private, "HPC607") == []


# --- audit E: public job scripts ----------------------------------------------------------------------------------------

def test_a_function_defined_inside_a_brace_group_is_read():
    from hpcwidgets.parse.lexer import compound_body, lex_script
    text = "{\n  function pick_port {\n    shuf -i 29500-29600 -n 1\n  }\n  port=$(pick_port)\n}\n"
    [group] = lex_script(text).code
    assert [c.text.split()[0] for c in compound_body(group) if c.text.strip()] == ["function", "port=$(pick_port)"]
    script = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n" + text
              + 'srun python train.py --port "$port"\n')
    assert found(script, "HPC000") == []


@pytest.mark.parametrize("text", ["{ echo function; }\n", "if true; then\n  function f { shuf; }\n  echo function x\nfi\n",
                                  "{\n  function f\n  {\n    shuf\n  }\n}\n", "{\n  g() {\n    shuf\n  }\n}\n"])
def test_other_function_forms_in_blocks_still_read(text):
    from hpcwidgets.parse.lexer import lex_script
    assert len(lex_script(text).code) == 1


def test_hpc217_takes_a_sourced_script_that_is_no_environment_file_as_the_work():
    text = ('#!/bin/bash\n#SBATCH --time=01:00:00\n'
            'srun singularity exec --nv img.sif bash -c "cd /work/run && source run_job.sh 0 1"\n')
    assert found(text, "HPC217") == []


@pytest.mark.parametrize("setup", ["source /opt/env.sh", "source activate myenv", ". ~/.bashrc",
                                   "source $VENV/bin/activate", "source setup_vars.sh"])
def test_hpc217_still_reports_a_container_that_only_sources_an_environment(setup):
    text = f"#!/bin/bash\napptainer exec img.sif {setup}\npython train.py\n"
    assert [line for line, _ in found(text, "HPC217")] == [2]


@pytest.mark.parametrize("value", ["YOUR_WANDB_API_KEY", "your_token_here", "'<api key>'", "xxxxxxxxxxxx", "changeme",
                                   "PASTE-KEY-HERE"])
def test_hpc602_leaves_a_placeholder_for_a_key_alone(value):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\nexport WANDB_API_KEY={value}\npython train.py\n"
    assert found(text, "HPC602") == []


def test_hpc602_reads_a_key_written_inside_a_function():
    text = ("#!/bin/bash\n#SBATCH --time=01:00:00\nrun_exp() {\n"
            "    export WANDB_API_KEY='7d11bbca76b3081b6bd1efbbcf1572aab26c5d56'\n    python train.py\n}\nrun_exp\n")
    assert [line for line, _ in found(text, "HPC602")] == [4]


def test_hpc536_reports_a_placeholder_that_stops_bash_inside_an_if():
    text = ('#!/bin/bash\n#SBATCH --time=01:00:00\nMODEL=llama3\nif [[ "$MODEL" == llama3 ]]; then\n'
            '    DATA_DIR=<llama3_data_dir>\nfi\npython train.py --data "$DATA_DIR"\n')
    [(line, message)] = found(text, "HPC536")
    assert line == 5 and message.startswith("<llama3_data_dir> left from a template") and "syntax error" in message


def test_hpc536_leaves_a_usage_message_in_quotes_inside_an_if_alone():
    text = '#!/bin/bash\nif [ -z "$1" ]; then\n  echo "usage: run <file>"\n  exit 1\nfi\n'
    assert found(text, "HPC536") == []


# --- audit F: build files -----------------------------------------------------------------------------------------------

def test_hpc716_keeps_the_quotes_of_the_program_in_its_fix():
    text = 'Bootstrap: docker\nFrom: ubuntu:22.04\n%runscript\n    python -c "import torch; print(torch.__version__)"\n'
    [message] = [f.message for f in lint(text, path="a.def") if f.code == "HPC716"]
    assert message.endswith('(python -c "import torch; print(torch.__version__)" "$@")')


# --- HPC718: export NAME VALUE in a definition file ---------------------------------------------------------------------

_DEF = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n"


@pytest.mark.parametrize(("section", "line", "fix"), [
    ("%environment\n    export PATH /opt/conda/bin:$PATH\n", 5, "export PATH=/opt/conda/bin:$PATH"),
    ('%post\n    apt-get update\n    export CUDA_HOME "/usr/local/cuda"\n', 6, 'export CUDA_HOME="/usr/local/cuda"'),
    ("%environment\n    export -n LANG C.UTF-8\n", 5, "export LANG=C.UTF-8"),
])
def test_hpc718_reports_an_export_in_the_env_form(section, line, fix):
    [(at, message)] = [(f.line, f.message) for f in lint(_DEF + section, path="x.def") if f.code == "HPC718"]
    assert at == line and message.endswith(f"write {fix}")


@pytest.mark.parametrize("section", ["%environment\n    export PATH=/opt/conda/bin:$PATH\n",
                                     "%environment\n    export A B C\n", "%environment\n    export A=1 B=2\n",
                                     "%post\n    export -p\n"])
def test_hpc718_leaves_exports_with_equals_or_several_names_alone(section):
    assert [f for f in lint(_DEF + section, path="x.def") if f.code == "HPC718"] == []


def test_hpc607_does_not_call_a_printed_user_name_the_token_when_the_token_is_the_user_name():
    text = ('#!/bin/bash\n#SBATCH --time=01:00:00\necho "user: $USER"\n'
            f'{_SERVER} --NotebookApp.token=${{USER}}\n')
    assert [f.code for f in lint(text) if f.code in ("HPC602", "HPC607")] == ["HPC602"]


def test_hpc602_still_reports_a_hex_key_that_starts_like_a_placeholder_word():
    text = "#!/bin/bash\nexport WANDB_API_KEY=add3f9c1e0b2d4a6c8e0f1a2b3c4d5e6f7a8b9c0d1\npython train.py\n"
    assert [line for line, _ in found(text, "HPC602")] == [2]


# --- lint --fix (audit J) -------------------------------------------------------------------------------------------------

def test_no_fix_is_applied_while_the_directives_are_ignored():
    from hpcwidgets.fixes import fix_script, held_back
    text = ("#!/bin/bash\nset -e\n#SBATCH --nodes=4\n"
            'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)\n'
            "srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node=1 --rdzv_backend=c10d "
            "--rdzv_endpoint=$MASTER_ADDR:29500 train.py\n")
    assert fix_script(text) == (text, [])
    assert "HPC501, line 3: --nodes" in held_back(text) and "move them above the first command" in held_back(text)
    moved = text.replace("set -e\n#SBATCH --nodes=4\n", "#SBATCH --nodes=4\nset -e\n")
    assert held_back(moved) == ""


def test_hpc101_fix_follows_the_job_size_where_the_launch_does():
    from hpcwidgets.fixes import fix_script
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
            'h=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)\n'
            'srun torchrun --nnodes=$SLURM_NNODES --nproc-per-node=$SLURM_GPUS_ON_NODE --rdzv-backend=c10d '
            '--rdzv-endpoint="$h:29500" train.py\n')
    new, fixed = fix_script(text)
    step = new.splitlines()[-1]
    assert [f.code for f in fixed] == ["HPC101"]
    assert step.startswith('srun "--ntasks=$SLURM_JOB_NUM_NODES" --ntasks-per-node=1')
    assert "--nproc-per-node=$SLURM_GPUS_ON_NODE" in step
    assert [f.code for f in lint(new) if f.severity == "error"] == []
    fixed_size = text.replace("--nnodes=$SLURM_NNODES", "--nnodes=2")
    assert fix_script(fixed_size)[0].splitlines()[-1].startswith("srun --ntasks=2 --ntasks-per-node=1")


@pytest.mark.parametrize(("step", "fixed"), [
    ("srun \"python -c 'print(1)'\"", "srun python -c 'print(1)'"),
    ('srun "./run.sh --name a\\ b"', "srun ./run.sh --name 'a b'"),
    ('srun "./run.sh $ip"', 'srun ./run.sh "$ip"'),
])
def test_hpc533_splits_the_quoted_command_as_a_shell_would(step, fixed):
    from hpcwidgets.fixes import fix_script
    new, _ = fix_script(f"#!/bin/bash\n#SBATCH --ntasks=1\nip=10.0.0.1\n{step}\n")
    assert new.splitlines()[-1] == fixed


def test_hpc533_offers_no_split_of_a_quote_left_open():
    text = "#!/bin/bash\n#SBATCH --ntasks=1\nsrun \"python -c 'print(1)\"\n"
    [finding] = [f for f in lint(text) if f.code == "HPC533"]
    assert finding.fix is None


# --- counts written as bash arithmetic (audit K) ------------------------------------------------------------------------

@pytest.mark.parametrize("count, reported", [("$((SLURM_NNODES * 8))", True), ("$(( $SLURM_NNODES*4 ))", False),
                                             ("$((8 * ${SLURM_JOB_NUM_NODES}))", True), ("$((SLURM_NNODES * N))", False)])
def test_hpc108_reads_a_process_count_written_as_arithmetic(count, reported):
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"
            f'srun accelerate launch --num_machines "$SLURM_NNODES" --num_processes {count} '
            '--machine_rank "\\$SLURM_NODEID" --main_process_ip "$(hostname)" train.py\n')
    messages = [m for _, m in found(text, "HPC108")]
    assert bool(messages) == reported
    if reported:
        assert "--num_processes 16 with --num_machines 2 starts 8 processes on each machine" in messages[0]


def test_arithmetic_of_counts_evaluates_plain_whole_numbers_only():
    from hpcwidgets.lint.catalogue import _evaluate
    known = {"SLURM_NNODES": 2, "SLURM_GPUS_ON_NODE": None}
    assert _evaluate("SLURM_NNODES * 4 + 1", known) == 9 and _evaluate("8 / SLURM_NNODES", known) == 4
    assert _evaluate("SLURM_GPUS_ON_NODE * 2", known) is None and _evaluate("8 / 0", known) is None
    assert _evaluate("__import__('os')", known) is None and _evaluate("2 ** 10", known) is None


@pytest.mark.parametrize("processes, machines, says", [
    ("2", "1", "--num_processes 2 starts 2 processes on each machine, leaving 2 of its 4 GPUs idle"),
    ('"$NGPU"', "1", "--num_processes 2 starts 2 processes on each machine, leaving 2 of its 4 GPUs idle"),
    ("6", "2", "--num_processes 6 with --num_machines 2 starts 3 processes on each machine, leaving 1 of its 4"),
])
def test_hpc109_reports_accelerate_processes_that_leave_gpus_idle(processes, machines, says):
    nodes = f"#SBATCH --nodes={machines}\n#SBATCH --ntasks-per-node=1\n"
    text = (f"#!/bin/bash\n{nodes}#SBATCH --gres=gpu:4\nNGPU=2\n"
            f"srun accelerate launch --num_machines {machines} --num_processes {processes} "
            '--machine_rank "\\$SLURM_NODEID" --main_process_ip "$(hostname)" train.py\n')
    [(_, message)] = found(text, "HPC109")
    assert message.startswith(says)


@pytest.mark.parametrize("processes, machines", [("4", "1"), ("8", "2"), ("4", "2")])  # (4 on 2: HPC118's)
def test_hpc109_leaves_accelerate_alone_where_every_gpu_has_a_process(processes, machines):
    text = (f"#!/bin/bash\n#SBATCH --nodes={machines}\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"
            f"srun accelerate launch --num_machines {machines} --num_processes {processes} "
            '--machine_rank "\\$SLURM_NODEID" --main_process_ip "$(hostname)" train.py\n')
    assert found(text, "HPC109") == []


def test_a_late_directive_that_does_not_size_the_job_holds_no_fix_back():
    from hpcwidgets.fixes import fix_script, held_back
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\ncd $SLURM_SUBMIT_DIR\n"
            "#SBATCH --cpus-per-task=4\napptainer exec img.sif python train.py\n")
    assert held_back(text) == ""
    assert "HPC201" in {f.code for f in fix_script(text)[1]}
