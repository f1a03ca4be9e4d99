"""The script reader: launches inside function bodies and other compound commands, the fail-fast
prologue read only where the renderer writes it, and which launch becomes the workflow's step."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ParseError
from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_script, read_script
from hpcwidgets.parse.lexer import MAX_NESTING, compound_body, lex_script
from hpcwidgets.render import render
from hpcwidgets.spec import SlurmJob, Verbatim
from hpcwidgets.spec.workflow import Workflow

HEADER = "#!/bin/bash\n#SBATCH --gres=gpu:8\n#SBATCH --ntasks-per-node=8\n#SBATCH --time=01:00:00\n"
LAUNCH = "srun apptainer exec --nv img_1.sif torchrun --nproc-per-node=8 train.py"


def rendered(model):
    return render(model, validate=False)


def step_lines(text):
    return [(s.line, s.in_compound) for s in read_script(text).steps]


# ---------------------------------------------------------------------------------------------
# launches inside compound commands


@pytest.mark.parametrize("body, line", [
    (f"train() {{\n  {LAUNCH}\n}}\ntrain\n", 6),
    (f"train() {{ {LAUNCH}; }}\ntrain\n", 5),
    (f"function train {{\n  {LAUNCH}\n}}\ntrain\n", 6),
    (f"function train() {{ {LAUNCH}; }}\ntrain\n", 5),
    (f"function train\n{{\n  {LAUNCH}\n}}\ntrain\n", 7),
    (f"train() (\n  {LAUNCH}\n)\ntrain\n", 6),
    (f"train() {{\n  for i in 1 2; do\n    if [[ $i == 1 ]]; then\n      {LAUNCH}\n    fi\n  done\n}}\ntrain\n", 8),
    (f"train() {{\n  case $1 in\n    a|b) echo no;;\n    *) {LAUNCH};;\n  esac\n}}\ntrain x\n", 8),
])
def test_a_launch_in_a_function_body_is_a_step_on_its_own_line(body, line):
    assert step_lines(HEADER + body) == [(line, True)]


@pytest.mark.parametrize("body, line", [
    (f"for i in 1 2; do\n  {LAUNCH}\ndone\n", 6),
    (f"for i in 1 2; do {LAUNCH}; done\n", 5),
    (f"if true; then\n  echo a\nelse\n  {LAUNCH}\nfi > log 2>&1\n", 8),
    (f"while read -r x; do\n  {LAUNCH}\ndone < hosts.txt\n", 6),
    (f"( cd /tmp && {LAUNCH} )\n", 5),
])
def test_a_launch_in_a_loop_an_if_or_a_subshell_is_a_step(body, line):
    assert step_lines(HEADER + body) == [(line, True)]


def test_function_bodies_are_linted_like_top_level_lines():
    wrapped = HEADER + f"train() {{\n  {LAUNCH}\n}}\ntrain\n"
    plain = HEADER + LAUNCH + "\n"
    codes = {f.code for f in lint(wrapped)}
    assert "HPC101" in codes  # 8 tasks per node x --nproc-per-node=8
    assert [(f.code, f.line) for f in lint(wrapped) if f.code == "HPC101"] == [("HPC101", 6)]
    assert codes == {f.code for f in lint(plain)}


def test_a_suppression_inside_a_function_body_applies_to_its_line():
    assert "HPC101" in {f.code for f in lint(HEADER + f"train() {{\n  {LAUNCH}\n}}\ntrain\n")}
    text = HEADER + f"train() {{\n  {LAUNCH}  # hpcw: disable=HPC101\n}}\ntrain\n"
    assert "HPC101" not in {f.code for f in lint(text)}
    text = HEADER + f"train() {{\n  # hpcw: disable-next=HPC101\n  {LAUNCH}\n}}\ntrain\n"
    assert "HPC101" not in {f.code for f in lint(text)}


def test_a_prefix_assignment_in_a_function_body_is_the_steps_environment():
    text = '#!/bin/bash\nstart() {\n  JUPYTER_TOKEN="$tok" \\\n    apptainer exec --nv img.sif jupyter lab &\n}\nstart\nwait\n'
    (step,) = read_script(text).steps
    assert (step.line, step.end_line, step.env) == (3, 4, (("JUPYTER_TOKEN", "$tok"),))
    assert step.chain.container.image == "img.sif" and step.command.joined_by == "&"


def test_modules_and_variables_in_a_function_body_are_not_the_scripts_own():
    text = ("#!/bin/bash\nmodule load gcc\nIMG=top.sif\nsetup() {\n  module load apptainer\n  IMG=inner.sif\n"
            "  export OMP_NUM_THREADS=4\n  srun apptainer exec $IMG python t.py\n}\nsetup\n")
    parsed = read_script(text)
    assert [(s.line, s.in_compound) for s in parsed.steps] == [(8, True)]  # the body is read, for its launch
    assert parsed.modules == (("gcc", 2),) and parsed.job.modules == ("gcc",)
    assert [(v.name, v.value, v.line) for v in parsed.variables] == [("IMG", "top.sif", 3)]
    assert parsed.variable("OMP_NUM_THREADS") is None


def test_a_function_stays_one_set_up_line_block_when_read_back():
    text = HEADER + f"train() {{\n  {LAUNCH}\n}}\ntrain\n"
    assert step_lines(text) == [(6, True)]
    workflow = parse_script(text)
    assert workflow.srun is None and workflow.container is None and workflow.launcher is None
    assert f"  {LAUNCH}" in "\n".join(workflow.job.setup)
    first = rendered(workflow)
    assert rendered(parse_script(first)) == first


def test_body_commands_keep_the_scripts_lines_columns_and_offsets():
    text = "echo a\nx=1; for i in 1 2; do\n  srun -n 1 hostname \"$i\"; echo b\ndone > log # hi\n"
    script = lex_script(text)
    loop = next(c for c in script.code if c.kind == "compound")
    inner = [c for c in compound_body(loop) if c.is_code]
    assert [(c.name, c.line, c.col, c.joined_by) for c in inner] == [("srun", 3, 3, ";"), ("echo", 3, 28, "")]
    for cmd in inner:
        assert cmd.text == text[cmd.offset:cmd.offset + len(cmd.text)].replace("done > log # hi", " " * 15)
        for word in cmd.words:
            assert text.splitlines()[word.line - 1][word.col - 1:].startswith(word.raw)
    assert compound_body(lex_script("[[ -f x ]]\n").code[0]) == ()


def test_generated_jupyter_scripts_show_their_container_to_lint():
    steps = read_script(examples("generic")["jupyter"].render()).steps
    assert steps and all(s.in_compound for s in steps)
    assert any(s.chain.program[:2] == ("jupyter", "lab") for s in steps)


# ---------------------------------------------------------------------------------------------
# the fail-fast prologue


def _twice(text):
    first = rendered(parse_script(text))
    return first, rendered(parse_script(first))


def test_a_fail_fast_line_after_a_command_stays_after_it():
    for line in ("set -eo pipefail", "set -euo pipefail"):  # (the auditor's repro, then its strict form)
        text = f"#!/bin/bash\n#SBATCH --time=00:10:00\ngrep -q gpu /etc/hostname\n{line}\npython train.py\n"
        first, second = _twice(text)
        assert second == first, line
        assert parse_script(first).job.fail_fast == "off"
        assert second.index("grep -q gpu") < second.index(line) < second.index("python train.py")


def test_a_later_set_u_of_an_errexit_job_stays_below_its_set_up_lines():
    job = SlurmJob(time="00:10:00", modules=("x",), fail_fast="errexit", setup=("echo hi", "set -u"))
    text = rendered(Workflow(job=job, program=("python", "t.py")))
    back = parse_script(text)
    assert (back.job.fail_fast, back.job.setup) == ("errexit", ("echo hi", "set -u"))
    assert rendered(back) == text


@pytest.mark.parametrize("mode", ["strict", "errexit", "off"])
def test_the_rendered_prologue_reads_back_as_its_mode(mode):
    # set-up lines that repeat the prologue's text are the job's own: read where the template writes them
    setup = ("echo hi", "set -eo pipefail", "set -u")
    job = SlurmJob(time="00:10:00", modules=("a", "b"), fail_fast=mode, setup=setup)
    text = rendered(Workflow(job=job, program=("python", "t.py")))
    back = parse_script(text)
    assert (back.job.fail_fast, back.job.setup, back.job.modules) == (mode, setup, ("a", "b"))
    assert rendered(back) == text


# ---------------------------------------------------------------------------------------------
# which launch is the step


def test_a_container_launch_is_preferred_over_a_later_srun_of_a_utility():
    text = ("#!/bin/bash\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\nsrun dcgmi profile --pause\n"
            "srun apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 train.py\n"
            "srun dcgmi profile --resume\n")
    workflow = parse_script(text)
    assert workflow.launcher.script == "train.py" and workflow.container.image == "img.sif"
    assert workflow.job.setup == ("srun dcgmi profile --pause",)
    assert workflow.after == ("srun dcgmi profile --resume",)
    first, second = _twice(text)
    assert second == first
    assert first.index("--pause") < first.index("torchrun") < first.index("--resume")
    # with no launcher or container anywhere, the last plain srun is still the step
    workflow = parse_script("#!/bin/bash\nsrun hostname\nsrun dcgmi profile --resume\n")
    assert workflow.srun is not None and workflow.program == ("dcgmi", "profile", "--resume")


def test_unquoted_program_arguments_are_kept_as_written_so_the_launch_is_the_step():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\nMODULE=${MODULE:-llama}\ndcgmi profile --pause\n"
            "srun torchrun --standalone --nproc-per-node=8 -m torchtitan.train --module ${MODULE} \"$@\"\n"
            "dcgmi profile --resume\n")
    workflow = parse_script(text)
    assert workflow.launcher.args == ("--module", Verbatim("${MODULE}"), Verbatim('"$@"'))
    assert workflow.after == ("dcgmi profile --resume",)
    first, second = _twice(text)
    assert second == first and "--module ${MODULE} \"$@\"" in first
    # in an option of the launcher the model would quote it: that launch stays a line as written
    text = "#!/bin/bash\nsrun torchrun --standalone --nproc-per-node $N train.py\n"
    workflow = parse_script(text)
    assert workflow.launcher is None
    assert rendered(workflow).count("--nproc-per-node $N train.py") == 1


def test_blocks_nested_deeper_than_the_lexer_allows_are_a_parse_error():
    def nested(depth):
        return "{ " * depth + "srun torchrun t.py" + "; }" * depth + "\n"
    assert step_lines(nested(MAX_NESTING)) == [(1, True)]
    with pytest.raises(ParseError, match=f"nesting deeper than {MAX_NESTING} levels"):
        read_script(nested(MAX_NESTING + 1))
    assert [f.code for f in lint(nested(5000))] == ["HPC000"]


# --------------------------------------------------------------------------------------------
# Jupyter job scripts read back whole (container, server settings, tunnel)

def _jupyter_variants():
    from hpcwidgets.spec import ApptainerRun, Bind, ChRun
    from hpcwidgets.spec.jupyter import JupyterJob
    base = JupyterJob(login_host="login.example.org")
    return [
        base,
        base.replace(container=ApptainerRun(nv=True, image="$SCRATCH/img.sif", binds=(Bind("/data"),)),
                     notebook_dir="$SCRATCH/nb", local_port=9999, login_user="alice"),
        base.replace(container=ApptainerRun(binary="singularity", cleanenv=True, image="img.sif")),
        base.replace(container=ChRun(image="/scratch/img", home=True), notebook_dir="/home/$USER"),
        base.replace(python="$HOME/miniconda3/envs/ml", extra_args=("--ServerApp.shutdown_no_activity_timeout=3600",),
                     idle_minutes=0, port_min=30000, port_max=30999, helper_python="/usr/bin/python3"),
    ]


@pytest.mark.parametrize("model", _jupyter_variants())
def test_a_jupyter_job_script_reads_back_to_its_model(model):
    from hpcwidgets.parse import parse_jupyter_job
    from hpcwidgets.render import render
    text = render(model)
    back = parse_jupyter_job(text)
    assert render(back) == text
    assert back.container == model.container and back.notebook_dir == model.notebook_dir


def test_jupyter_job_from_a_script_keeps_its_container(tmp_path, capsys):
    from hpcwidgets.cli import main
    first = tmp_path / "jl.sbatch"
    assert main(["jupyter-job", "--login-host", "login.example.org", "--container", "apptainer exec --rocm /s/lab.sif",
                 "--set", "notebook_dir=/s/$USER", "-o", str(first)]) == 0
    edited = tmp_path / "jl2.sbatch"
    assert main(["jupyter-job", "--from", str(first), "--set", "job.time=04:00:00", "-o", str(edited)]) == 0
    text = edited.read_text()
    assert "apptainer exec --rocm" in text and '"--notebook-dir=/s/$USER"' in text and "--time=04:00:00" in text
    capsys.readouterr()
