"""False positives and wrong messages found by the audit of real-world scripts (part B).

Each case is what sbatch, bash or torchrun actually do, not what the linter used to assume:
sbatch's option table and getopt prefixes (HPC312/313/317), port 0 and elastic launches (HPC106),
bash's tilde expansion (HPC219), runscript arguments (HPC203), the home directory Apptainer mounts
anyway (HPC204/206), untyped --gpus-per-node (HPC107), profile codes on the default partition
(HPC40x), and files sbatch refuses before reading any directive (HPC314/315/316).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.cli import main
from hpcwidgets.files import read_text
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint, rules_markdown
from hpcwidgets.parse.script import read_script
from hpcwidgets.spec.slurm import sbatch_long_option, sbatch_option


def found(text: str, code: str | None = None, profile=None) -> list:
    return [f for f in lint(text, profile) if code is None or f.code == code]


def codes(text: str, profile=None, *, info: bool = False) -> set[str]:
    return {f.code for f in lint(text, profile) if info or f.severity != "info"}


def no_internal_names(findings) -> None:
    for f in findings:
        assert "Verbatim(" not in f.message and "binds." not in f.message and "(image)" not in f.message, f.message


# --------------------------------------------------------------------------------------------
# item 7 and 15: sbatch's option table (aliases, getopt prefixes), spelling-level suggestions only

def directive(line: str) -> str:
    return f"#!/bin/bash\n#SBATCH {line}\nsrun python train.py\n"


@pytest.mark.parametrize("line", ["--tasks-per-node=1", "--cluster=a", "--ntasks-per-tres=1", "--ntasks-per-node=1",
                                  "--mem=4G", "--gpus=2"])
def test_options_sbatch_has_are_silent(line: str) -> None:
    assert not found(directive(line)), line


def test_tasks_per_node_is_read_as_ntasks_per_node() -> None:
    parsed = read_script(directive("--tasks-per-node=4"))
    assert parsed.job.ntasks_per_node == 4
    # so the rules see it: 4 torchrun launchers per node oversubscribe the GPUs
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --tasks-per-node=4\n#SBATCH --gres=gpu:4\n"
            "head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
            "srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=\"$head_node:29500\" train.py\n")
    assert "HPC101" in codes(text)


def test_long_options_as_getopt_reads_them() -> None:
    assert sbatch_long_option("--tasks") == "--tasks-per-node"       # sbatch -v: ntasks-per-node
    assert sbatch_long_option("--mem") == "--mem"                    # exact beats --mem-per-cpu
    assert sbatch_long_option("--exclusiv") == "--exclusive"
    assert sbatch_long_option("--ntasks-per") == ""                  # ambiguous: sbatch refuses it
    assert sbatch_long_option("--nosuch") == ""
    assert sbatch_option("--tasks") == "value" and sbatch_option("--exclusiv") == "optional"
    assert sbatch_option("-N") == "value" and sbatch_option("--ntask-per-node") == ""


def test_a_prefix_is_that_option_never_a_guess() -> None:
    out = found(directive("--tasks=2"))
    assert [(f.code, f.severity) for f in out] == [("HPC317", "info")]
    assert "--ntasks-per-node" in out[0].message and "not --ntasks" in out[0].message
    new, fixed = fix_script(directive("--tasks=2"))
    assert "#SBATCH --ntasks-per-node=2\n" in new and [f.code for f in fixed] == ["HPC317"]
    assert read_script(new).job.ntasks_per_node == 2


@pytest.mark.parametrize("line,srun_flag,never", [("--mpi=pmix", "--mpi", "--tmp"),
                                                   ("--cpu_bind=cores", "--cpu-bind", "--gpu-bind"),
                                                   ("--cpu-bind=cores", "--cpu-bind", "--gpu-bind")])
def test_srun_options_are_named_as_such(line: str, srun_flag: str, never: str) -> None:
    out = found(directive(line))
    assert [f.code for f in out] == ["HPC312"]
    assert "srun option" in out[0].message and f"srun {srun_flag}=" in out[0].message
    assert never not in out[0].message and "did you mean" not in out[0].message and out[0].fix is None


@pytest.mark.parametrize("line,meant", [("--ntask-per-node=1", "--ntasks-per-node"),     # one letter missing
                                        ("--gpus-per-nodes=1", "--gpus-per-node"),       # one letter extra
                                        ("--cpus-pre-task=2", "--cpus-per-task"),        # two letters swapped
                                        ("--ntasks_per_node=1", "--ntasks-per-node"),    # _ for -
                                        ("--task-per-node=1", "--ntasks-per-node")])     # a slip of an alias
def test_spelling_level_suggestions(line: str, meant: str) -> None:
    out = found(directive(line), "HPC312")
    assert len(out) == 1 and out[0].message.endswith(f"did you mean {meant}?")
    new, _ = fix_script(directive(line))
    assert f"#SBATCH {meant}=" in new


def test_no_suggestion_beyond_a_slip() -> None:
    assert [f.code for f in found(directive("--nodez=2"))] == ["HPC313"]  # a different letter: no guess
    assert [f.code for f in found(directive("--gpu-count=2"))] == ["HPC313"]  # no option is a slip away


def test_an_ambiguous_prefix_is_refused() -> None:
    out = found(directive("--ntasks-per=1"))
    assert [f.code for f in out] == ["HPC312"] and "ambiguous" in out[0].message and out[0].fix is None


def _sbatch_env(tmp_path: Path) -> dict[str, str]:
    need(shutil.which("sbatch") is not None, "sbatch (Slurm's client) is not installed")
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=lintcheck\nSlurmctldHost=localhost\n")
    return dict(os.environ, SLURM_CONF=str(conf))


@pytest.mark.parametrize("flag", ["--tasks-per-node", "--tasks", "--cluster", "--ntasks-per-tres", "--mem",
                                  "--exclusiv", "--ntasks-per", "--mpi", "--cpu_bind", "--nodez", "--ntasks_per_node",
                                  "--gpus-per-nodes", "--time-m"])
def test_the_option_table_agrees_with_sbatch(flag: str, tmp_path: Path) -> None:
    """sbatch parses its options before anything else: --version after the flag ends it there."""
    proc = subprocess.run(["sbatch", f"{flag}=1", "--version"], capture_output=True, text=True,
                          env=_sbatch_env(tmp_path), timeout=30)
    refused = "unrecognized option" in proc.stderr or "ambiguous" in proc.stderr
    assert refused == (sbatch_option(flag) == ""), proc.stderr
    flagged = codes(directive(f"{flag}=1"), info=True) & {"HPC312", "HPC313"}
    assert bool(flagged) == refused


# --------------------------------------------------------------------------------------------
# item 8 and 15: HPC106 only for a fixed port on certainly one node, never rewriting an elastic launch

def one_node(launch: str, nodes: str = "#SBATCH --nodes=1\n") -> str:
    return f"#!/bin/bash\n{nodes}#SBATCH --gres=gpu:4\n{launch}\n"


@pytest.mark.parametrize("launch", [
    "torchrun --nnodes=1 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=localhost:0 train.py",
    "torchrun --nproc-per-node=4 --master-port=0 train.py",
])
def test_port_zero_is_what_standalone_does(launch: str) -> None:
    assert not found(one_node(launch), "HPC106")


@pytest.mark.parametrize("nodes,launch", [
    ("#SBATCH --nodes=2-4\n", "torchrun --nnodes=2:4 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py"),
    ("#SBATCH --nodes=1-4\n", "torchrun --nnodes=1:4 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py"),
    ("#SBATCH --nodes=1-2\n", "torchrun --nnodes=1 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py"),
    ("#SBATCH --nodes=1\nN=$1\n", "torchrun --nnodes=$N --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py"),
])
def test_elastic_or_unknown_node_counts_are_never_made_standalone(nodes: str, launch: str) -> None:
    text = one_node(launch, nodes)
    assert not found(text, "HPC106")
    new, _ = fix_script(text)
    assert "--standalone" not in new


def test_an_elastic_range_on_a_one_node_job_with_a_local_rendezvous_is_reported_but_not_rewritten() -> None:
    """No other node can join a rendezvous on localhost in a one-node job, so the fixed port clashes as for
    --nnodes=1; the elastic range is still the user's to rewrite."""
    text = one_node("torchrun --nnodes=1:2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 "
                    "train.py")
    assert found(text, "HPC106")
    new, _ = fix_script(text)
    assert "--standalone" not in new


def test_a_fixed_port_on_one_node_is_still_reported_and_fixed() -> None:
    text = one_node("torchrun --nnodes=$SLURM_NNODES --nproc-per-node=4 --rdzv-backend=c10d "
                    "--rdzv-endpoint=localhost:29500 train.py")
    out = found(text, "HPC106")
    assert len(out) == 1 and "29500" in out[0].message
    new, _ = fix_script(text)
    assert "--standalone" in new and "29500" not in new


# --------------------------------------------------------------------------------------------
# item 9: bash expands a leading unquoted ~; messages name things in words

TILDE = """#!/bin/bash
#SBATCH --gres=gpu:1
singularity exec --nv ~/images/pytorch_24.05.sif python train.py
apptainer exec --nv -B ~/data:/data img_1.0.sif python train.py
apptainer exec --nv -B ~ img_1.0.sif python train.py
"""


def test_a_leading_unquoted_tilde_is_expanded_by_bash() -> None:
    assert not found(TILDE, "HPC219")
    assert [f.line for f in found(TILDE, "HPC206")] == [3]  # the image is under $HOME all the same


@pytest.mark.parametrize("bind,what", [
    ('--bind=~/d:/d', "the bind's host path"),        # after = in an option: bash leaves it
    ('-B "~/q:/q"', "the bind's host path"),          # quoted
    ('-B /a:~/b', "the bind's container path"),       # after :
    ('-B ~/a:/a,~/c', "the bind's host path"),        # the second bind, after ,
])
def test_a_literal_tilde_is_reported_in_words(bind: str, what: str) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv {bind} img_1.0.sif python train.py\n"
    out = found(text, "HPC219")
    assert len(out) == 1, [f.message for f in out]
    assert out[0].message.startswith(f"apptainer ({what}): ") and "'~' is not expanded" in out[0].message
    no_internal_names(out)


def test_a_quoted_tilde_image_is_reported() -> None:
    out = found('#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv "~/img_1.0.sif" python train.py\n', "HPC219")
    assert len(out) == 1 and out[0].message.startswith("apptainer (the image): ")


# --------------------------------------------------------------------------------------------
# item 10: arguments after the image of run go to the runscript

def test_runscript_arguments_are_not_misplaced_options() -> None:
    text = ('#!/bin/bash\n#SBATCH --gres=gpu:1\n'
            'singularity run --nv "$SCRATCH/images/detector_1.2.sif" -c configs/train.yaml -e 3 -B x\n')
    assert not found(text, "HPC203")
    new, _ = fix_script(text)
    assert new == text


@pytest.mark.parametrize("step", ["apptainer exec --nv img_1.0.sif python train.py -c cfg.yaml -e 3",
                                  "apptainer exec --nv img_1.0.sif torchrun --standalone --nproc-per-node=1 train.py -c x"])
def test_options_of_the_program_are_its_own(step: str) -> None:
    assert not found(f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{step}\n", "HPC203")


def test_options_where_the_program_belongs_are_still_reported() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsingularity exec --nv img_1.0.sif -B /a:/b python t.py\n"
    out = found(text, "HPC203")
    assert len(out) == 1 and out[0].message.startswith("-B /a:/b comes after the image")
    new, _ = fix_script(text)
    assert "-B /a:/b img_1.0.sif python t.py" in new or "--bind /a:/b img_1.0.sif python t.py" in new


# --------------------------------------------------------------------------------------------
# item 12: HPC107, HPC204, HPC206

GPUS_VAR = "#!/bin/bash\n#SBATCH {}\ntorchrun --standalone --nnodes=1 --nproc-per-node=\"$SLURM_GPUS_PER_NODE\" train.py\n"


def test_untyped_gpus_per_node_makes_the_variable_a_number() -> None:
    assert not found(GPUS_VAR.format("--gpus-per-node=4"), "HPC107")


@pytest.mark.parametrize("request_,says", [("--gpus-per-node=a100:4", "is a100:4 here"),
                                           ("--gres=gpu:4", "set only when the job asks for GPUs with --gpus-per-node")])
def test_typed_or_gres_requests_still_break_the_variable(request_: str, says: str) -> None:
    out = found(GPUS_VAR.format(request_), "HPC107")
    assert len(out) == 1 and says in out[0].message


@pytest.mark.parametrize("step,flagged", [
    ("apptainer exec --bind $HOME img_1.0.sif python t.py", False),       # mounted anyway
    ("apptainer exec --bind \"$HOME:$HOME\" img_1.0.sif python t.py", False),
    ("apptainer exec --bind \"$HOME:/h\" img_1.0.sif python t.py", True),   # a second copy, at /h
    ("apptainer exec -B ~ img_1.0.sif python t.py", False),
    ("apptainer exec --no-home --bind $HOME img_1.0.sif python t.py", True),
    ("apptainer exec --containall -B ~:/h img_1.0.sif python t.py", True),
    ("apptainer exec -B /etc img_1.0.sif python t.py", True),
    ("apptainer exec -B /:/host img_1.0.sif python t.py", True),
    ("ch-run -b $HOME:/mnt/0 /scratch/img.sqfs -- python t.py", True),     # ch-run mounts no home by default
])
def test_binding_home_only_matters_where_it_is_not_mounted_anyway(step: str, flagged: bool) -> None:
    out = found(f"#!/bin/bash\n{step}\n", "HPC204")
    assert bool(out) == flagged, [f.message for f in out]
    if "/h " in step and "--containall" not in step:
        assert "a second time, at /h" in out[0].message and "--no-home" in out[0].message


@pytest.mark.parametrize("image,flagged", [("/home/software/singularity/tf26.simg", False),
                                           ("/home/$USER/images/x_1.0.sif", True), ("$HOME/x_1.0.sif", True),
                                           ("~/x_1.0.sif", True), ("/scratch/x_1.0.sif", False)])
def test_image_in_home_means_the_users_home(image: str, flagged: bool) -> None:
    assert bool(found(f"#!/bin/bash\napptainer exec {image} python t.py\n", "HPC206")) == flagged


# --------------------------------------------------------------------------------------------
# item 16: profile findings on the default partition keep their own codes

def test_default_partition_findings_have_their_own_codes() -> None:
    text = "#!/bin/bash\n#SBATCH --mem=512G\n#SBATCH --cpus-per-task=160\n#SBATCH --time=3-00:00:00\npython train.py\n"
    out = {(f.line, f.code) for f in lint(text, "generic")}
    assert out == {(2, "HPC405"), (3, "HPC406"), (4, "HPC402")}
    assert {f.code for f in lint(text, "generic", ignore=["HPC407"])} == {"HPC405", "HPC406", "HPC402"}
    gpus = "#!/bin/bash\n#SBATCH --gres=gpu:1\npython train.py\n"
    assert {f.code for f in lint(gpus, "generic")} == {"HPC407"}


# --------------------------------------------------------------------------------------------
# item 18: files sbatch refuses outright

CRLF = "#!/bin/bash\r\n#SBATCH --gres=gpu:1\r\n#SBATCH --time=01:00:00\r\napptainer exec --nv img_1.0.sif python train.py\r\n"


def test_windows_line_endings() -> None:
    out = found(CRLF)
    assert [f.code for f in out if f.severity != "info"] == ["HPC314"]
    assert out[0].line == 1 and "dos2unix" in out[0].message and "4 lines" in out[0].message
    new, fixed = fix_script(CRLF)
    assert new == CRLF.replace("\r\n", "\n") and [f.code for f in fixed] == ["HPC314"]
    # lines keep their numbers, and the rules read the script as they would without the \r
    assert not found(CRLF, "HPC301") and found(CRLF.replace("img_1.0.sif", "img.sif --nv"), "HPC203")


def test_windows_line_endings_and_other_fixes_compose() -> None:
    text = "#!/bin/bash\r\n#SBATCH --ntask-per-node=1\r\n#SBATCH --cpus-per-task=8\r\nsrun python train.py  # go\r\n"
    new, fixed = fix_script(text)
    assert "\r" not in new and {f.code for f in fixed} == {"HPC314", "HPC312", "HPC309"}
    assert new == "#!/bin/bash\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=8\nsrun --cpus-per-task=\"$SLURM_CPUS_PER_TASK\" python train.py  # go\n"


def test_the_cli_reads_line_endings_as_written(tmp_path: Path, capsys) -> None:
    p = tmp_path / "job.sh"
    p.write_bytes(CRLF.encode())
    assert main(["lint", str(p)]) == 1
    assert f"{p}:1: error HPC314 " in capsys.readouterr().out
    assert main(["lint", "--fix", str(p)]) == 0
    assert p.read_bytes() == CRLF.replace("\r\n", "\n").encode()
    assert (tmp_path / "job.sh.bak").read_bytes() == CRLF.encode()
    assert "fixed HPC314" in capsys.readouterr().err
    # other readers still get universal newlines
    assert read_text(tmp_path / "job.sh.bak").text == CRLF.replace("\r\n", "\n")
    assert read_text(tmp_path / "job.sh.bak", keep_newlines=True).text == CRLF


def test_a_byte_order_mark_is_still_reported_once_by_the_cli(tmp_path: Path, capsys) -> None:
    p = tmp_path / "job.sh"
    p.write_bytes(b"\xef\xbb\xbf#!/bin/bash\r\n#SBATCH --time=10\r\npython x.py\r\n")
    assert main(["lint", str(p)]) == 1
    out, err = capsys.readouterr()
    assert out.count("HPC315") == 1 and "byte-order mark" in out and "HPC314" in out


@pytest.mark.parametrize("text,fixed", [
    ("#SBATCH --time=01:00:00\nsrun python train.py\n", "#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py\n"),
    ("\n#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py\n", "#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py\n"),
    ("  #!/bin/bash\nhostname\n", "#!/bin/bash\nhostname\n"),
    ("\ufeff#!/bin/bash\n#SBATCH --time=10\nhostname\n", "#!/bin/bash\n#SBATCH --time=10\nhostname\n"),
])
def test_the_first_line_must_start_with_shebang(text: str, fixed: str) -> None:
    out = found(text)
    assert [f.code for f in out] == ["HPC315"], [f.format() for f in out]
    new, done = fix_script(text)
    assert new == fixed and [f.code for f in done] == ["HPC315"]


def test_a_command_snippet_is_not_a_batch_script() -> None:
    assert not found("apptainer exec --nv img_1.0.sif python train.py\n", "HPC315")


@pytest.mark.parametrize("text,says", [("", "is empty"), ("\n  \n", "only whitespace")])
def test_an_empty_script(text: str, says: str) -> None:
    out = found(text)
    assert [f.code for f in out] == ["HPC316"] and says in out[0].message


def test_the_rule_documentation_shows_carriage_returns() -> None:
    doc = rules_markdown()
    assert "\r" not in doc and "#!/bin/bash^M" in doc


@pytest.mark.parametrize("data,says,code", [
    (b"#!/bin/bash\r\nhostname\r\n", "DOS line breaks", "HPC314"),
    (b"#SBATCH --time=1\nhostname\n", "does not look like a batch script", "HPC315"),
    (b"\n#!/bin/bash\nhostname\n", "does not look like a batch script", "HPC315"),
    (b"", "Batch script is empty", "HPC316"),
    (b"\n \n", "only whitespace", "HPC316"),
])
def test_sbatch_refuses_what_the_rules_report(data: bytes, says: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_bytes(data)
    proc = subprocess.run(["sbatch", str(script)], capture_output=True, text=True, env=_sbatch_env(tmp_path), timeout=60)
    assert proc.returncode != 0 and says in proc.stderr, proc.stderr
    assert code in {f.code for f in lint(data.decode())}
