"""``hpcwidgets convert --gpu VENDOR ch-run …``: a ch-run command does not show the GPUs its job gets, so the
vendor is given, and the Apptainer command gets that vendor's option."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("vendor, flag", [("nvidia", "--nv"), ("amd", "--rocm"), ("intel", None)])
def test_the_vendor_gives_its_option(capsys, vendor, flag):
    code, out, _ = run(capsys, "convert", "--gpu", vendor, "ch-run", "./img", "--", "python", "t.py")
    assert code == 0
    command = out.strip().split("\n")[-1]
    assert command.startswith("apptainer exec") and command.endswith("./img python t.py")
    others = {"--nv", "--rocm"} - {flag}
    assert (flag is None or flag in command.split()) and not others & set(command.split())
    if vendor == "amd":
        assert "ROCm" in out  # the note on what --rocm binds that ch-run did not


def test_without_it_no_gpu_option_is_added(capsys):
    code, out, _ = run(capsys, "convert", "ch-run", "./img", "--", "true")
    assert code == 0 and not {"--nv", "--rocm"} & set(out.split())


def test_an_unknown_vendor_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--gpu", "nvida", "ch-run", "./img", "--", "true"])
    assert info.value.code == 2
    assert "choose from 'nvidia', 'amd', 'intel'" in capsys.readouterr().err
