"""What an audit of job scripts from public repositories found lint getting wrong or missing (session 27).

Each script here is a small one of our own that has the shape the audit found: a backslash that a comment follows
(HPC504), a path list that names its own variable without the $ (HPC535), ``${8888}`` for a port (HPC540), ``>`` in
``[ … ]`` (HPC541), a token the script itself prints (HPC607), a one-node torchrun in a job of two nodes (HPC110),
CPUs asked for where a node has no more to give (HPC136), and a memory request in megabytes (HPC405).
"""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC504: a backslash, blanks and a comment --------------------------------------------------------------------

def test_a_comment_after_the_backslash_ends_the_command_before_an_indented_line():
    text = HEAD + 'apptainer exec --nv pytorch.sif \\    # the image to use\n    python train.py\n'
    [(line, message)] = found(text, "HPC504")
    assert line == 3
    assert "comment after its backslash" in message and "line 4 runs as a command of its own" in message
    assert all(f.fix is None for f in lint(text) if f.code == "HPC504")  # the comment is the user's: no fix drops it


def test_a_comment_after_the_backslash_before_an_option_line_is_reported_once_where_the_option_is():
    text = HEAD + 'apptainer exec --nv pytorch.sif \\  # note\n    --bind /a:/b python train.py\n'
    [(line, message)] = found(text, "HPC504")
    assert line == 4 and "a comment follows the backslash" in message


def test_a_backslash_and_a_blank_keeps_its_finding_and_fix():
    text = HEAD + 'apptainer exec --nv pytorch.sif \\ \n    python train.py\n'
    [finding] = [f for f in lint(text) if f.code == "HPC504"]
    assert finding.line == 3 and finding.fix is not None
    assert "pytorch.sif \\\n" in apply_fix(text, finding.fix)


@pytest.mark.parametrize("text", [
    HEAD + 'apptainer exec --nv pytorch.sif python train.py  # a comment \\ here\n    echo next\n',
    HEAD + 'echo a \\ # the comment\necho b\n',                 # the next line starts at the same depth
    HEAD + 'apptainer exec --nv pytorch.sif \\\n    python train.py  # fine\n',
])
def test_comments_that_end_no_continuation_are_left_alone(text):
    assert found(text, "HPC504") == []


# --- HPC535: a part of a colon-separated value ----------------------------------------------------------------------

@pytest.mark.parametrize(("line", "name", "shown"), [
    ("export LD_LIBRARY_PATH=LD_LIBRARY_PATH:/usr/local/cuda/lib64", "LD_LIBRARY_PATH",
     '"$LD_LIBRARY_PATH:/usr/local/cuda/lib64"'),
    ("export LD_LIBRARY_PATH=/opt/extra/lib:LD_LIBRARY_PATH", "LD_LIBRARY_PATH", '"/opt/extra/lib:$LD_LIBRARY_PATH"'),
    ("PATH=PATH:$HOME/bin", "PATH", '"$PATH:$HOME/bin"'),
    ("export PYTHONPATH=$PWD/src:PYTHONPATH", "PYTHONPATH", None),
])
def test_a_path_list_that_names_its_own_variable_without_the_dollar(line, name, shown):
    [(at, message)] = found(HEAD + line + "\nsrun python train.py\n", "HPC535")
    assert at == 3 and f"the $ before {name} is missing" in message
    if shown is not None:
        assert message.endswith(f"write {shown}")


def test_an_endpoint_written_with_the_variable_s_name_is_reported_and_fixed():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\nMASTER_ADDR=$(scontrol show hostnames | head -n1)\n"
            "srun torchrun --nnodes=2 --rdzv-backend=c10d --rdzv-endpoint=MASTER_ADDR:29500 train.py\n")
    [finding] = [f for f in lint(text) if f.code == "HPC535"]
    assert finding.line == 4 and "MASTER_ADDR:29500: the $ before MASTER_ADDR is missing" in finding.message
    assert '"--rdzv-endpoint=$MASTER_ADDR:29500"' in apply_fix(text, finding.fix)


@pytest.mark.parametrize("line", [
    "apptainer pull docker://USER/image:1.0",                 # a URL's parts are no list
    "apptainer exec -B /scratch:/data img.sif python a.py",  # no variable's name
    "export LD_LIBRARY_PATH=/opt/lib:$LD_LIBRARY_PATH",       # written right
    "echo PATH:$PATH",                                        # a printer's text
])
def test_colon_lists_without_a_missing_dollar_are_left_alone(line):
    assert found(HEAD + "MASTER_ADDR=x\n" + line + "\n", "HPC535") == []


# --- HPC540: a positional parameter for a number --------------------------------------------------------------------

@pytest.mark.parametrize(("word", "shown"), [("--port=${8888}", "${8888} is the script's argument number 8888"),
                                             ("--port=$8888", "$8888 is $8"),
                                             ('--port="${29500}"', "${29500}")])
def test_a_port_written_as_a_positional_parameter(word, shown):
    [(line, message)] = found(HEAD + f"jupyter lab --no-browser {word}\n", "HPC540")
    assert line == 3 and message.startswith(shown) and "write " in message


@pytest.mark.parametrize("word", ["${12}", "$1", "'${100}'", "\\$100", "'$8888'", "$((100 + 1))", "${PORT:-8888}"])
def test_parameters_a_script_may_have_and_literal_text_are_left_alone(word):
    assert found(HEAD + f"python train.py --x {word}\n", "HPC540") == []


def test_the_rule_reads_commands_inside_blocks_and_assignments():
    text = HEAD + "if true; then\n  port=${8888}\nfi\n"
    assert [line for line, _ in found(text, "HPC540")] == [4]


# --- HPC541: > and < in [ … ] ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "op"), [('if [ "$SLURM_CPUS_PER_TASK" > 0 ]; then echo many; fi', ">"),
                                          ("[ $a < $b ] && echo smaller", "<"),
                                          ('test "$N" > "$M" && echo more', ">")])
def test_a_comparison_written_with_a_redirection(line, op):
    [(at, message)] = found(HEAD + line + "\n", "HPC541")
    assert at == 3 and message.startswith(f"{op} in ") and ("-gt" if op == ">" else "-lt") in message


@pytest.mark.parametrize("line", ["[ -f data.npz ] > /dev/null && echo here", "[ -d x ] 2>/dev/null",
                                  '[[ "$a" > "$b" ]] && echo later', 'if [ "$N" -gt 0 ]; then echo ok; fi',
                                  "(( N > 0 )) && echo ok"])
def test_real_comparisons_and_redirections_to_files_are_left_alone(line):
    assert found(HEAD + line + "\n", "HPC541") == []


# --- HPC538: a ksh-style message after a foreground server --------------------------------------------------------

def test_a_print_message_after_jupyter_is_no_work_the_server_holds_up():
    text = (HEAD + 'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\n'
            'jupyter lab --no-browser --port=8888 --ServerApp.port_retries=0\nprint "jupyter exited"\n')
    assert found(text, "HPC538") == []
    assert found(text.replace('print "jupyter exited"', "python report.py"), "HPC538") != []


# --- HPC607: a token the script makes and then prints ---------------------------------------------------------------

JUPYTER = "jupyter lab --no-browser --port=8888 --ServerApp.port_retries=0\n"


@pytest.mark.parametrize(("setup", "shown"), [
    ("export JUPYTER_TOKEN=$(openssl rand -hex 24)\necho \"open http://localhost:8888/?token=$JUPYTER_TOKEN\"\n",
     "$JUPYTER_TOKEN"),
    ('tok=$(openssl rand -hex 24)\nexport JUPYTER_TOKEN="$tok"\necho "token: ${tok}" >&2\n', "$tok"),
])
def test_a_token_the_script_prints_into_the_log(setup, shown):
    text = HEAD + setup + JUPYTER
    [(line, message)] = found(text, "HPC607")
    assert line == text.split("\n").index(next(x for x in text.split("\n") if x.startswith("echo"))) + 1
    assert f"prints the token ({shown})" in message and 'chmod go-rwx "/proc/$$/fd/1"' in message


@pytest.mark.parametrize("setup", [
    'export JUPYTER_TOKEN=$(openssl rand -hex 24)\nchmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\n'
    'echo "token=$JUPYTER_TOKEN"\n',                                              # the log is private first
    'export JUPYTER_TOKEN=$(openssl rand -hex 24)\necho "$JUPYTER_TOKEN" > "$HOME/.token"\n',  # into a file
    "export JUPYTER_TOKEN=$(openssl rand -hex 24)\necho started\n",              # not printed
])
def test_a_script_s_own_token_that_stays_out_of_the_log(setup):
    assert found(HEAD + setup + JUPYTER, "HPC607") == []


# --- HPC110: a torchrun for one node in a job of two ---------------------------------------------------------------

TWO_NODES = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"
             "#SBATCH --cpus-per-task=16\nexport SRUN_CPUS_PER_TASK=16\n")
MULTI_NODE = ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
              'srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head:29500" train.py\n')


@pytest.mark.parametrize("one", ["torchrun --standalone --nnodes=1 --nproc-per-node=4 check.py",
                                 "torchrun --nnodes=1 --nproc-per-node=4 --master-port=29400 check.py",
                                 "torchrun --nnodes=1:1 --nproc-per-node=4 check.py"])
def test_a_one_node_check_before_the_multi_node_run_is_not_reported(one):
    assert found(TWO_NODES + one + "\n" + MULTI_NODE, "HPC110") == []


def test_a_one_node_launch_with_nothing_else_on_the_other_node_is_still_reported():
    """Without another launch on every node, a one-node torchrun in a job of two is likelier the mistake of thinking it
    spreads: the finding and its fix (srun, and HPC113's rendezvous) stay."""
    [finding] = [f for f in lint(TWO_NODES + "torchrun --standalone --nproc-per-node=4 train.py\n")
                 if f.code == "HPC110"]
    assert finding.line == 7 and finding.fix is not None


def test_a_one_node_launch_in_the_other_branch_of_the_multi_node_run_is_still_reported():
    text = TWO_NODES + ('if [ "$QUICK" = yes ]; then\n  torchrun --standalone --nproc-per-node=4 train.py\nelse\n  '
                        + MULTI_NODE.replace("\n", "\n  ").rstrip() + "\nfi\n")
    assert [line for line, _ in found(text, "HPC110")] == [8]


def test_a_multi_node_torchrun_in_the_batch_shell_is_still_reported_with_its_fix():
    text = TWO_NODES + MULTI_NODE.replace("srun torchrun", "torchrun")
    [finding] = [f for f in lint(text) if f.code == "HPC110"]
    assert "start it with srun" in finding.message and finding.fix is not None


# --- HPC136: no more CPUs to give ------------------------------------------------------------------------------------

def test_no_cpus_are_asked_for_where_each_gpu_has_one():
    text = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=2\n#SBATCH --gres=gpu:2\nsrun python ddp.py\n"
    local = load_profile("local")   # 2 CPUs and 2 GPUs a node: the default CPU per task is each GPU's share
    assert found(text, "HPC136", local) == []
    on_gpu_nodes = text.replace("--nodes=1", "--nodes=1\n#SBATCH --partition=gpu")
    assert found(on_gpu_nodes, "HPC136", load_profile("generic")) != []   # more CPUs per GPU there


# --- HPC405: the unit of a bare number -------------------------------------------------------------------------------

def test_memory_written_without_a_unit_is_shown_in_megabytes():
    text = "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --mem=460000\nsrun python train.py\n"
    [(_, message)] = found(text, "HPC405", load_profile("generic"))
    assert message.startswith("460000 MB per node is more than")


# --- build files: HPC701 and HPC705 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["latest-gpu", "latest-release", "nightly", "nightly-devel-cuda12.1", "LATEST_cpu"])
def test_tags_that_move_with_each_release_are_reported(tag):
    [finding] = [f for f in lint(f"FROM tensorflow/tensorflow:{tag}\nRUN echo hi\n", path="Dockerfile")
                 if f.code == "HPC701"]
    assert f":{tag}, a tag its publisher moves" in finding.message


@pytest.mark.parametrize("tag", ["2.16.1-gpu", "latestversion", "24.05-py3", "nightlybuild2"])
def test_version_tags_are_left_alone(tag):
    assert "HPC701" not in {f.code for f in lint(f"FROM ns/img:{tag}\nRUN echo hi\n", path="Dockerfile")}


def test_apt_told_to_assume_yes_in_its_configuration_asks_nothing():
    told = "RUN printf 'APT::Get::Assume-Yes \"true\";\\n' > /etc/apt/apt.conf.d/90-yes\n"
    install = "RUN apt-get update && apt-get install git\n"
    assert "HPC705" not in {f.code for f in lint("FROM ubuntu:24.04\n" + told + install, path="Dockerfile")}
    assert "HPC705" in {f.code for f in lint("FROM ubuntu:24.04\n" + install + told, path="Dockerfile")}


# --- HPC604: the classic Notebook reads NotebookApp settings only ----------------------------------------------------

@pytest.mark.parametrize(("server", "option"), [("jupyter notebook", "--NotebookApp.port_retries=0"),
                                                ("jupyter-notebook", "--NotebookApp.port_retries=0"),
                                                ("python -m notebook", "--NotebookApp.port_retries=0"),
                                                ("jupyter lab", "--ServerApp.port_retries=0")])
def test_port_retries_advice_names_the_setting_the_server_reads(server, option):
    text = HEAD + 'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\n' + f"{server} --no-browser --port=8888\n"
    [(_, message)] = found(text, "HPC604")
    assert message.startswith(f"without {option}")
    assert found(text.replace("--port=8888", f"--port=8888 {option}"), "HPC604") == []


# --- HPC704: an editable install whose code the build left in /tmp --------------------------------------------------

DEF = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n%post\n"


@pytest.mark.parametrize("post", [
    "    cd /tmp && git clone https://example.org/pkg.git && cd pkg && pip install -e .\n",
    "    git clone https://example.org/pkg.git /var/tmp/pkg\n    pip install --editable /var/tmp/pkg\n",
    "    SRC=/tmp/src\n    cd $SRC\n    python3 -m pip install -e ./pkg\n",
])
def test_an_editable_install_from_a_folder_apptainer_binds_over(post):
    [finding] = [f for f in lint(DEF + post, path="t.def") if f.code == "HPC704"]
    assert "keeps the package's code in /" in finding.message and "drop -e" in finding.message


@pytest.mark.parametrize("post", [
    "    cd /opt && git clone https://example.org/pkg.git && cd pkg && pip install -e .\n",
    "    cd /tmp && git clone https://example.org/pkg.git && cd pkg && pip install .\n",   # copied into site-packages
    "    pip install -e git+https://example.org/pkg.git#egg=pkg\n",
    "    cd /tmp\n    cd \"$OLDPWD\"\n    pip install -e .\n",                               # a folder lint cannot tell
])
def test_editable_installs_that_stay_in_the_image_are_left_alone(post):
    assert "HPC704" not in {f.code for f in lint(DEF + post, path="t.def")}


# --- HPC525: source under #!/bin/sh ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shebang", ["#!/bin/sh", "#!/bin/sh -l", "#!/usr/bin/env sh", "#!/bin/dash"])
def test_source_in_a_script_sh_runs(shebang):
    text = f"{shebang}\n#SBATCH --time=01:00:00\nsource venv/bin/activate\npython train.py\n"
    [(line, message)] = found(text, "HPC525")
    assert line == 3 and "'source: not found'" in message and "write . FILE" in message


@pytest.mark.parametrize(("shebang", "line"), [("#!/bin/bash", "source venv/bin/activate"),
                                               ("#!/bin/sh", ". venv/bin/activate"),
                                               ("#!/bin/ksh", "source venv/bin/activate")])
def test_source_where_the_shell_has_it_and_the_posix_dot_are_left_alone(shebang, line):
    assert found(f"{shebang}\n#SBATCH --time=01:00:00\n{line}\npython train.py\n", "HPC525") == []
