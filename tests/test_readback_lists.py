"""Reading a script back keeps each command where bash runs it: a command on the line after ``a &`` is one of its own,
and a comment inside a list (``a && ⏎ # why ⏎ b``) stays a comment between its two commands."""

from __future__ import annotations

import pytest

from hpcwidgets.parse import parse_script
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
