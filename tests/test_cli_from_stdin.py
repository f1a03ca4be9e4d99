"""``--from -``: a model piped in as JSON or as TOML (``hpcwidgets parse --format toml job.sbatch | hpcwidgets
workflow --from -``), and anything else refused with what it holds."""

from __future__ import annotations

import io

import pytest

from hpcwidgets.cli import main
from hpcwidgets.examples import examples
from hpcwidgets.spec._toml import dumps


def piped(monkeypatch, capsys, text: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8"))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_saved_model_is_read_from_standard_input_in_either_format(monkeypatch, capsys, fmt):
    model = examples("generic")["multi-node-torchrun"].model
    text = model.to_json() if fmt == "json" else dumps(model.to_dict())
    code, out, err = piped(monkeypatch, capsys, text, "workflow", "--from", "-")
    assert code in (0, 1), err  # (1: lint's findings on the script, if any)
    assert "#SBATCH --job-name=multi-node" in out


@pytest.mark.parametrize("text, says", [
    ("apptainer exec img.sif python train.py\n", "is a command line, not a saved model"),
    ("a = [\n", "is not a saved model"),
    ("", "standard input is empty"),
])
def test_what_is_neither_is_refused_with_what_it_holds(monkeypatch, capsys, text, says):
    code, _, err = piped(monkeypatch, capsys, text, "workflow", "--from", "-")
    assert code == 2 and says in err and "Traceback" not in err
