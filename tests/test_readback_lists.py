"""Reading a script back keeps each command where bash runs it: a command on the line after ``a &`` is one of its own,
and a comment inside a list (``a && ⏎ # why ⏎ b``) stays a comment between its two commands."""

from __future__ import annotations

import pytest

from hpcwidgets.parse import parse_script
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.lexer import lex_script
from hpcwidgets.render import render


def code_lines(text: str) -> list[tuple[str, str]]:
    """The commands bash runs, in order, each with the operator joining it to the next."""
    return [(" ".join(w.raw for w in c.words), c.joined_by) for c in lex_script(text).commands
            if c.is_code and c.words]


@pytest.mark.parametrize("body", [
    "srun python server.py &\n# give the server time to start\nsleep 30\nsrun python client.py\n",
    "srun python serve.py &\n# give the server time to start\nsleep 10\npython client.py\nwait\n",
    "mkdir -p out &&\n  # then stage the data\n  cp -r data out/\nsrun python train.py\n",
    "srun python train.py\ncat log.txt |\n  # keep the loss lines\n  grep loss > loss.txt\n",
    "module load cuda; echo loaded\nsrun a & srun b\nwait\n",
])
def test_commands_around_comments_come_back_as_bash_runs_them(body):
    text = "#!/bin/bash\n#SBATCH --nodes=1\n" + body
    rendered = render(parse_script(text))
    assert code_lines(rendered)[-len(code_lines(body)):] == code_lines(body), rendered
    for comment in (line.strip() for line in body.splitlines() if line.strip().startswith("#")):
        assert any(line.strip() == comment for line in rendered.splitlines()), rendered  # still a line of its own


def test_a_variable_set_for_the_step_alone_stays_on_its_line_when_commands_follow():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\nmodule load cuda\nCUDA_VISIBLE_DEVICES=0 srun python train.py\n"
            "python evaluate_on_all_gpus.py\n")
    rendered = render(parse_script(text))
    assert "export CUDA_VISIBLE_DEVICES" not in rendered  # bash gives it to that one command only
    assert code_lines(rendered)[-2:] == code_lines(text)[-2:]


def test_a_last_line_continued_into_a_blank_line_reads_back():
    text = "#!/bin/bash\n#SBATCH --nodes=1\nsrun true\nCUDA_VISIBLE_DEVICES=0,1 deepspeed train.py \\\n    --model m \\\n\n"
    rendered = render(parse_script(text))
    assert rendered.endswith("\\\n\n") and render(parse_script(rendered)) == rendered


def test_a_name_exported_twice_keeps_both_and_renders():
    text = "#!/bin/bash\n#SBATCH --nodes=1\nexport UCX_TLS='ib'\nexport UCX_TLS=rc,sm\nsrun python train.py\n"
    assert render(parse_script(text)) == text  # unedited, both exports stay as written
    rendered = render(without_layout(parse_script(text)))  # the renderer's own export lines, both in order
    assert rendered.index("export UCX_TLS=ib") < rendered.index("export UCX_TLS=rc,sm") < rendered.index("srun")


@pytest.mark.parametrize("line", ["declare -xr IMG_MODULE='singularitypro/3.11'", "readonly RUN=7", "wait"])
def test_a_builtin_that_sets_variables_or_waits_is_no_step(line):
    text = f"#!/bin/bash\n#SBATCH --nodes=1\n{line}\nmodule load x\ntime -p singularity exec img.sif python t.py\n"
    rendered = render(parse_script(text))
    assert "# The step:" not in rendered and render(parse_script(rendered)) == rendered


HAND_WRITTEN_JUPYTER = """#!/bin/bash
#SBATCH --time=02:00:00
port=3004
node=$(hostname -s)
echo "tunnel: ssh -N -L ${port}:${node}:${port} me@login.example.org"
jupyter-lab --no-browser --port=${port} --ip=${node}
"""


def test_reading_a_hand_written_jupyter_script_says_its_server_is_replaced(tmp_path, capsys):
    from hpcwidgets.cli import main
    from hpcwidgets.parse.jupyter import replaced_server_note
    script = tmp_path / "jl.sh"
    script.write_text(HAND_WRITTEN_JUPYTER)
    assert main(["jupyter-job", "--from", str(script), "--login-host", "login.example.org"]) == 0
    err = capsys.readouterr().err
    assert "starts its own Jupyter server (line 6)" in err and "check the set-up lines" in err
    from hpcwidgets.examples import examples
    assert replaced_server_note(examples()["jupyter"].render()) == ""  # a job hpcwidgets wrote: nothing to say


def test_the_jupyter_form_says_so_on_load():
    pytest.importorskip("ipywidgets")
    import html
    import re
    from hpcwidgets.widgets import JupyterJobBuilder
    b = JupyterJobBuilder()
    assert b.load(HAND_WRITTEN_JUPYTER)
    said = html.unescape(re.sub("<[^>]+>", "", b.status.value))
    assert said.startswith("Loaded.") and "starts its own Jupyter server (line 6)" in said


def test_a_template_placeholder_line_is_kept_as_written():
    text = ("#!/bin/bash\n#SBATCH --output={homedir}/jupyterhub_slurmspawner_%j.log\n#SBATCH --export={keepvars}\n"
            "source $VENV/bin/activate\n{cmd}\n")
    rendered = render(parse_script(text))
    assert rendered.rstrip().endswith("\n{cmd}") and "'{cmd}'" not in rendered  # batchspawner fills it in
