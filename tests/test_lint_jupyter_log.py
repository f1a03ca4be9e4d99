"""HPC607: Jupyter's own token printed into a log other users may read, and what starts a Jupyter server."""

from __future__ import annotations

import pytest

from hpcwidgets.examples import examples
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.spec.jupyter import server_start

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def hpc607(body: str) -> list[str]:
    return [f.message for f in lint(HEAD + body) if f.code == "HPC607"]


@pytest.mark.parametrize("body, where", [
    ('jupyter lab --no-browser --ip="$(hostname -s)" --port=8888\n', "the job's log"),
    ("apptainer exec lab.sif jupyter lab --no-browser\n", "the job's log"),
    ("jupyter lab --no-browser > jupyter.log\n", "the job's log"),          # stdout only: the URL is on stderr
    ("jupyter lab --no-browser > jupyter.log 2>&1\n", "into jupyter.log"),
    ("jupyter lab --no-browser &> $HOME/j.log &\nwait\n", "into $HOME/j.log"),
    ("jupyter lab --no-browser 2> j.err\numask 077\n", "into j.err"),       # umask after the server: too late
    ('exec > "$HOME/j.log" 2>&1\njupyter lab --no-browser\n', "exec redirection"),
    ("start() {\n  python -m jupyterlab --no-browser\n}\nstart\n", "the job's log"),
    ("#SBATCH --error=/dev/null\n#SBATCH --output=j.out\njupyter lab --no-browser 2>&1\n", "the job's log"),
])
def test_a_token_jupyter_makes_reaches_a_readable_log(body, where):
    found = hpc607(body)
    assert len(found) == 1 and where in found[0], found


@pytest.mark.parametrize("body", [
    'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"\njupyter lab --no-browser\n',
    'chmod 600 "slurm-${SLURM_JOB_ID}.out"\njupyter lab --no-browser\n',
    'for fd in 1 2; do\n  if [[ -f /proc/$$/fd/$fd ]]; then chmod o-r "/proc/$$/fd/$fd"; fi\ndone\njupyter lab\n',
    "export JUPYTER_TOKEN=$(openssl rand -hex 24)\njupyter lab --no-browser\n",
    'JUPYTER_TOKEN="$tok" jupyter lab --no-browser\n',
    'export JUPYTER_TOKEN_FILE="$HOME/.jupyter/token"\njupyter lab --no-browser\n',
    'export APPTAINERENV_JUPYTER_TOKEN="$tok"\napptainer exec lab.sif jupyter lab --no-browser\n',
    'jupyter lab --no-browser --ServerApp.password="$hash"\n',
    "umask 077\njupyter lab --no-browser &> jupyter.log\n",
    "umask u=rwx,g=,o=\njupyter lab --no-browser > j.log 2>&1\n",
    'umask 0077\nexec > "$HOME/j.log" 2>&1\njupyter lab --no-browser\n',
    "jupyter lab --no-browser > /dev/null 2>&1 &\nsleep 5\njupyter server list\n",
    "jupyter lab build\njupyter notebook password\njupyter server list\n",   # tools, not servers
    "#SBATCH --output=/dev/null\njupyter lab --no-browser\n",                   # no log to read
    "#SBATCH --output=j.out\n#SBATCH --error=/dev/null\njupyter lab --no-browser\n",
])
def test_no_token_jupyter_made_reaches_a_readable_log(body):
    assert hpc607(body) == []


def test_fix_makes_the_log_private_where_the_server_starts_and_the_script_stays_clean():
    script = HEAD + "set -euo pipefail\nstart() {\n  jupyter lab --no-browser \\\n    --port=8888\n}\nstart\n"
    text, fixed = fix_script(script)
    assert [f.code for f in fixed] == ["HPC607"]
    assert '  for hpcw_fd in 1 2; do if [ -f "/proc/$$/fd/$hpcw_fd" ]; then chmod go-rwx "/proc/$$/fd/$hpcw_fd"; ' \
           "fi; done  # the log will hold Jupyter's token\n  jupyter lab --no-browser \\\n" in text
    assert hpc607(text[len(HEAD):]) == []


def test_the_shipped_jupyter_job_passes():
    for profile in ("generic", "local"):
        assert [f for f in lint(examples(profile)["jupyter"].render()) if f.code == "HPC607"] == []


@pytest.mark.parametrize("words, at", [
    ("jupyter lab --ip=x", 0), ("jupyter-lab --port 1", 0), ("python -m jupyterlab --port=1", 0),
    ("python3 -m jupyter lab", 0), ("apptainer exec a.sif jupyter notebook", 3),
    ("jupyter server list", None), ("jupyter lab build", None), ("jupyter-notebook list", None),
    ("python -m jupyterlab build", None), ("python3 -m jupyter notebook stop", None),
    ("jupyter notebook password", None), ("jupyter lab --version", None), ("jupyter labextension list", None),
])
def test_what_starts_a_jupyter_server(words, at):
    assert server_start(words.split()) == at


@pytest.mark.parametrize("body, expected", [
    ("apptainer exec lab.sif bash -c 'source /opt/conda/bin/activate && jupyter lab --no-browser --port=8888'\n",
     {"HPC604", "HPC607"}),
    ("srun bash -c \"jupyter lab --no-browser --ServerApp.token='' --ServerApp.port_retries=0\"\n", {"HPC603"}),
    ('apptainer exec lab.sif bash -c "jupyter lab --ServerApp.token=$tok --ServerApp.port_retries=0"\n', {"HPC606"}),
    ("apptainer exec lab.sif bash -c 'export JUPYTER_TOKEN=$(openssl rand -hex 24); jupyter lab'\n", set()),
    ("apptainer exec lab.sif bash -c 'jupyter lab --ServerApp.port_retries=0' > /dev/null 2>&1\n", set()),
    ("apptainer exec lab.sif bash -c 'jupyter lab' > lab.log 2>&1\n", {"HPC607"}),
])
def test_jupyter_rules_read_a_bash_c_script(body, expected):
    found = [f for f in lint(HEAD + body) if f.code.startswith("HPC6")]
    assert {f.code for f in found} == expected and all(f.line == 3 for f in found), [f.format() for f in found]
    assert all(f.fix is None for f in found), "a fix must not rewrite the line of the command around bash -c"
