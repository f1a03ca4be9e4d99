"""The command line: a thin layer over the API."""

import json

import pytest

from hpcwidgets import __version__
from hpcwidgets.cli import build_parser, main
from hpcwidgets.spec import SlurmJob


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def all_subcommands():
    parser = build_parser()
    out = []
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        if nested:
            out += [(name, child) for child in nested[0].choices]
        else:
            out.append((name,))
    return out


@pytest.mark.parametrize("path", all_subcommands(), ids=lambda p: " ".join(p))
def test_every_subcommand_has_help(capsys, path):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: hpcwidgets" in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_apptainer_exec_renders_the_command(capsys):
    code, out, _ = run(capsys, "apptainer", "exec", "--nv", "--bind", "$SCRATCH/data:/data:ro", "img.sif",
                       "python", "train.py", "--nv")
    assert code == 0
    assert out.split() == ["apptainer", "exec", "--nv", "\\", "--bind", '"$SCRATCH/data:/data:ro"', "\\", "img.sif",
                           "python", "train.py", "--nv"] or out.startswith("apptainer exec --nv")
    assert out.rstrip().endswith("python train.py --nv")


@pytest.mark.parametrize("argv, codes", [
    (["apptainer", "exec", "--bind", "/", "docker://pytorch/pytorch", "python", "train.py"],
     ["HPC204", "HPC207", "HPC208", "HPC211"]),
    (["charliecloud", "run", "-b", "/:/mnt/0", "./img", "--", "ls"], ["HPC204"]),
    (["apptainer", "exec", "--nv", "--bind", "/scratch", "pytorch_24.05.sif", "python", "train.py"], []),
])
def test_a_command_written_is_linted_like_a_script(capsys, argv, codes):
    # the command builders say what lint and the forms say of the same command: warnings on stderr, exit 0
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert [line.split()[9] for line in err.splitlines()] == codes
    assert all("(of the command written): warning" in line for line in err.splitlines())


def test_bad_input_gives_one_message_per_problem_and_exit_2(capsys):
    code, out, err = run(capsys, "sbatch", "--time", "1.5h", "--mem", "16GiB", "--gpus-per-node", "-1")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(l.startswith("hpcwidgets: error:") for l in lines)
    assert "Traceback" not in err and "16G" in err and "D-H:M:S" in err
    assert "error: --time:" in err and "error: --mem:" in err  # the options typed, not the model's field names


def test_profile_checks_reject_what_the_site_forbids(capsys):
    code, _, err = run(capsys, "sbatch", "--profile", "generic", "--partition", "nope", "--time", "01:00:00")
    assert code == 2 and "nope" in err and "Traceback" not in err


def test_json_and_toml_round_trip_through_from_and_set(tmp_path, capsys):
    code, out, _ = run(capsys, "sbatch", "--job-name", "t", "--gpus-per-node", "2", "--format", "json")
    assert code == 0 and SlurmJob.from_json(out) == SlurmJob(job_name="t", gpus_per_node=2)
    saved = tmp_path / "job.json"
    saved.write_text(out)
    code, out, _ = run(capsys, "sbatch", "--from", str(saved), "--time", "10", "--format", "toml")
    assert code == 0 and 'time = "10"' in out and 'job_name = "t"' in out
    toml_file = tmp_path / "job.toml"
    toml_file.write_text(out)
    code, out, _ = run(capsys, "sbatch", "--from", str(toml_file))
    assert code == 0 and "#SBATCH --time=10" in out and "#SBATCH --gres=gpu:2" in out


def test_workflow_from_example_with_set(tmp_path, capsys):
    code, out, _ = run(capsys, "examples", "multi-node-torchrun", "--profile", "generic", "--format", "json")
    assert code == 0
    f = tmp_path / "wf.json"
    f.write_text(out)
    code, out, err = run(capsys, "workflow", "--from", str(f), "--set", "job.nodes=4", "--set", "launcher.nnodes=4")
    assert code == 0, err
    assert "#SBATCH --nodes=4" in out and "--nnodes=4" in out
    code, _, err = run(capsys, "workflow", "--from", str(f), "--set", "job.nodez=4")
    assert code == 2 and "valid fields" in err


def test_a_workflow_built_from_scratch_with_command_lines(tmp_path, capsys):
    """Each layer is typed as the command a person would write; the script lints clean of errors."""
    code, out, err = run(
        capsys, "workflow", "--set", "job.partition=gpu", "--set", "job.nodes=2", "--set", "job.ntasks_per_node=1",
        "--set", "job.gpus_per_node=4", "--set", "job.time=01:00:00", "--srun", "srun --ntasks-per-node=1",
        "--container", 'apptainer exec --nv --bind "$SCRATCH/data:/data" $SCRATCH/img.sif',
        "--launcher", "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head_node:29500 "
                      "train.py --epochs 3",
        "--prepare", "apptainer pull $SCRATCH/img.sif docker://pytorch/pytorch:latest", "--format", "json")
    assert code == 0, err
    model = json.loads(out)
    assert model["container"]["kind"] == "apptainer.run" and model["container"]["nv"] is True
    assert model["container"]["binds"][0]["src"] == "$SCRATCH/data"
    assert model["launcher"]["args"] == ["--epochs", "3"] and model["srun"]["ntasks_per_node"] == 1
    assert [p["kind"] for p in model["prepare"]] == ["apptainer.pull"]
    script = tmp_path / "wf.json"
    script.write_text(out)
    code, text, err = run(capsys, "workflow", "--from", str(script))
    assert code == 0 and "head_node=$(scontrol show hostnames" in text
    assert '"$SCRATCH/img.sif" \\\n  torchrun --nnodes=2' in text
    from hpcwidgets.lint import has_errors, lint
    assert not has_errors(lint(text))


@pytest.mark.parametrize("argv,says", [
    (["--container", "x.sif"], "'x.sif' is not a command this reader knows"),
    (["--container", "srun -n 2"], "'srun -n 2' is srun, but --container takes apptainer exec|run"),
    (["--container", 'apptainer exec "x.sif'], "unterminated double quote"),
    (["--launcher", "python train.py"], "e.g. --launcher 'torchrun"),
    (["--set", "container.image=x.sif"], "give it first with --container 'apptainer exec"),
])
def test_a_layer_typed_wrongly_names_the_fix(capsys, argv, says):
    code, out, err = run(capsys, "workflow", *argv)
    assert code == 2 and says in err and "Traceback" not in err and not out


def test_set_starts_a_layer_that_has_one_kind(capsys):
    code, out, err = run(capsys, "workflow", "--set", "launcher.script=train.py", "--set", "launcher.nproc_per_node=2",
                         "--format", "json")
    assert code == 0, err
    assert json.loads(out)["launcher"]["nproc_per_node"] == "2"


def test_from_reads_a_job_script_too(tmp_path, capsys):
    code, out, _ = run(capsys, "examples", "multi-node-torchrun", "--profile", "generic")
    script = tmp_path / "train.sbatch"
    script.write_text(out)
    code, again, err = run(capsys, "workflow", "--from", str(script))
    assert code == 0 and again == out, err  # the script read back is written back the same
    code, out, err = run(capsys, "workflow", "--from", str(script), "--set", "job.nodes=3")
    assert code == 0 and "--nnodes=3" in out, err  # torchrun's --nnodes follows the job, as in the form
    code, out, err = run(capsys, "sbatch", "--from", str(script), "--set", "time=00:30:00")
    assert code == 0 and "#SBATCH --time=00:30:00" in out, err
    code, _, err = run(capsys, "torchrun", "--from", str(script))
    assert code == 2 and "job script" in err


def test_output_file_is_atomic_and_never_overwritten_silently(tmp_path, capsys):
    target = tmp_path / "job.sbatch"
    code, _, err = run(capsys, "examples", "single-gpu", "-o", str(target))
    assert code == 0 and str(target) in err
    first = target.read_text()
    assert first.startswith("#!/bin/bash") and target.stat().st_mode & 0o100
    code, _, err = run(capsys, "examples", "array-sweep", "-o", str(target))
    assert code == 2 and "--force" in err and target.read_text() == first
    code, _, _ = run(capsys, "examples", "array-sweep", "-o", str(target), "--force")
    assert code == 0 and target.read_text() != first
    assert [p.name for p in tmp_path.iterdir()] == ["job.sbatch"]  # no temporary files left behind


def test_examples_list_and_unknown(capsys):
    code, out, _ = run(capsys, "examples", "--profile", "local")
    assert code == 0 and {"single-gpu", "multi-node-torchrun", "array-sweep", "charliecloud", "jupyter"} <= \
        {line.split()[0] for line in out.splitlines()}
    code, _, err = run(capsys, "examples", "nope")
    assert code == 2 and "single-gpu" in err


def test_convert_apptainer_to_charliecloud(capsys):
    code, out, _ = run(capsys, "convert", "apptainer", "exec", "--bind", "/data:/mnt/0", "./img", "python", "t.py")
    assert code == 0 and "ch-run" in out and "-- python t.py" in out


def test_convert_ch_run_words_keep_set_env_dollars_for_ch_run(capsys):
    """Given as separate words, a $ left in --set-env was quoted for ch-run (it expands it in the container): the
    Apptainer command must not turn it into a host reference ("PATH=/opt/x/bin:$PATH" would pass the host's PATH),
    and the same command pasted as one line reads the same; the program's own words keep their $ as given."""
    words = ["ch-run", "--set-env=PATH=/opt/x/bin:$PATH", "-b", "/d:/d", "img", "--", "python", "t.py", "$X"]
    code, out, _ = run(capsys, "convert", *words)
    assert code == 0
    step = out.splitlines()[-1]
    assert step.startswith("apptainer exec") and "PATH" not in step and step.endswith('python t.py "$X"')
    assert "ch-run itself replaces $PATH in --set-env=PATH=/opt/x/bin:$PATH" in out
    code, pasted, _ = run(capsys, "convert", "ch-run '--set-env=PATH=/opt/x/bin:$PATH' -b /d:/d img -- python t.py '$X'")
    assert code == 0 and pasted.splitlines()[-1].startswith(step[:-len(' "$X"')])


def test_bad_json_file_is_a_clean_error(tmp_path, capsys):
    f = tmp_path / "bad.json"
    f.write_text("{not json")
    code, _, err = run(capsys, "apptainer", "exec", "--from", str(f))
    assert code == 2 and "not valid JSON" in err


def test_profile_list_and_show(capsys):
    code, out, _ = run(capsys, "profile", "list")
    assert code == 0 and {"generic", "local", "midway3"} <= {l.split()[0] for l in out.splitlines()}
    code, out, _ = run(capsys, "profile", "show", "local", "--format", "json")
    assert code == 0 and json.loads(out)["name"] == "local"


def test_python_dash_m(capsys):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "hpcwidgets", "torchrun", "--standalone", "--nproc-per-node", "2",
                           "t.py"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("torchrun --standalone --nproc-per-node=2 t.py")


def test_help_shows_output_patterns_as_typed(capsys):
    with pytest.raises(SystemExit):
        main(["sbatch", "--help"])
    out = capsys.readouterr().out
    assert "E.g. %x-%j.out." in out and "%%" not in out
    with pytest.raises(SystemExit):
        main(["jupyter-job", "--help"])
    out = capsys.readouterr().out
    assert "--login-host HOST" in out and "--login-host midway3" not in out  # an example would read like a default


def test_a_repeated_set_of_a_list_field_adds_to_it(tmp_path, capsys):
    code, out, _ = run(capsys, "examples", "single-gpu", "--profile", "generic", "--format", "json")
    f = tmp_path / "wf.json"
    f.write_text(out)
    code, out, err = run(capsys, "workflow", "--from", str(f), "--set", "container.binds=/scratch/me/data:/data:ro",
                         "--set", "container.binds=/scratch/me/out:/out")
    assert code == 0, err
    assert "--bind /scratch/me/data:/data:ro" in out and "--bind /scratch/me/out:/out" in out
    assert '--bind "$HPCW_PAYLOAD:/payload:ro"' in out   # the loaded binds stay
    code, out, err = run(capsys, "workflow", "--from", str(f), "--set", "container.binds=", "--set",
                         "container.binds=/a,/b")
    assert code == 0 and "HPCW_PAYLOAD:/payload" not in out and "--bind /a" in out and "--bind /b" in out, err


def test_set_keeps_the_commas_of_a_line_or_a_value(capsys):
    code, out, err = run(capsys, "workflow", "--set", 'job.setup=mkdir -p "$SCRATCH/run/"{ckpt,logs}',
                         "--set", "exports=NCCL_SOCKET_IFNAME=ib0,ib1", "--set", "job.env=CUDA_VISIBLE_DEVICES=0,1",
                         "--program", "python train.py")
    assert code == 0, err
    assert 'mkdir -p "$SCRATCH/run/"{ckpt,logs}\n' in out
    assert "export NCCL_SOCKET_IFNAME=ib0,ib1\n" in out and "export CUDA_VISIBLE_DEVICES=0,1\n" in out


def test_parse_warns_that_a_secret_in_the_script_goes_into_the_model(tmp_path, capsys):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --time=10\nexport WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567\n"
                      "python train.py\n")
    code, out, err = run(capsys, "parse", str(script), "--format", "json")
    assert code == 0 and "WANDB_API_KEY" in out
    assert f"{script}:3:" in err and "holds it too" in err


def test_a_site_profile_starts_as_a_renamed_copy_and_is_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HPCW_PROFILE_PATH", "")
    mine = tmp_path / "hpcwidgets" / "profiles" / "hydra.toml"
    mine.parent.mkdir(parents=True)
    code, _, err = run(capsys, "profile", "show", "generic", "--name", "hydra", "-o", str(mine))
    assert code == 0 and 'name = "hydra"' in mine.read_text(), err
    code, out, err = run(capsys, "profile", "check", "hydra")
    assert code == 0 and "profile 'hydra' is valid" in out, err
    mine.write_text(mine.read_text().replace('max_time = "', 'max_time = "1.5h', 1))
    code, out, err = run(capsys, "profile", "check", "hydra")
    assert code == 2 and "is not a Slurm time" in err and "line " in err


def test_a_saved_jupyter_job_says_where_the_tunnel_will_be(tmp_path, capsys):
    target = tmp_path / "jupyter.sh"
    code, _, err = run(capsys, "jupyter-job", "--profile", "midway3", "-o", str(target))
    assert code == 0 and target.is_file(), err
    assert f"sbatch {target}" in err and "jupyter-JOBID.log prints the ssh tunnel" in err


def test_the_tools_own_short_options(capsys, tmp_path):
    code, out, err = run(capsys, "sbatch", "-p", "gpu", "-t", "01:00:00", "-N", "2", "-c", "8", "--commands", "true")
    assert code == 0, err
    assert all(d in out for d in ("--partition=gpu", "--time=01:00:00", "--nodes=2", "--cpus-per-task=8"))
    code, out, err = run(capsys, "apptainer", "exec", "-B", "/data:/mnt", "--nv", "img.sif", "python", "t.py")
    assert code == 0 and "--bind /data:/mnt" in out, err
    # -o stays the CLI's output file (sbatch's -o is --output here)
    target = tmp_path / "job.sh"
    code, out, err = run(capsys, "sbatch", "-t", "10", "--commands", "true", "-o", str(target))
    assert code == 0 and not out and "#SBATCH --time=10" in target.read_text(), err


def test_a_list_option_adds_to_the_model_loaded_with_from(capsys, tmp_path):
    code, out, _ = run(capsys, "examples", "multi-node-torchrun", "--profile", "generic", "--format", "json")
    saved = tmp_path / "wf.json"
    saved.write_text(out)
    before = [e["name"] for e in json.loads(out)["exports"]]
    code, out, err = run(capsys, "workflow", "--from", str(saved), "--exports", "OMP_NUM_THREADS=8", "--format", "json")
    assert code == 0, err
    assert [e["name"] for e in json.loads(out)["exports"]] == [*before, "OMP_NUM_THREADS"]
    assert "HPCW_PAYLOAD" in before   # the binds still refer to it


def test_profile_loads_the_runtime_module_and_lint_speaks_about_the_output(capsys):
    # (CPUs for the four workers too: without them HPC136 would say they share one)
    argv = ["workflow", "--set", "job.partition=gpu", "--set", "job.gpus_per_node=4", "--set", "job.time=02:00:00",
            "--set", "job.cpus_per_task=32", "--container", "apptainer exec --nv $SCRATCH/pytorch.sif",
            "--launcher", "torchrun --standalone --nproc-per-node=4 train.py"]
    code, out, err = run(capsys, *argv, "--profile", "generic")
    assert code == 0 and "\nmodule load apptainer\n" in out and "hpcwidgets: lint:" not in err, err
    code, out, err = run(capsys, *argv)   # no profile: nothing to fill, and lint has nothing to say either
    assert code == 0 and "module load" not in out and "hpcwidgets: lint:" not in err
    # a script lint finds fault with is written, and lint's findings are printed with it
    code, out, err = run(capsys, "workflow", "--set", "job.gpus_per_node=1", "--set", "job.time=10",
                         "--container", "apptainer exec img_1.0.sif", "--program", "python t.py")
    assert code == 1 and out.startswith("#!") and "hpcwidgets: lint: line" in err and "HPC201" in err


@pytest.mark.parametrize("argv,says", [
    (["workflow", "-J", "ft", "--program", "python t.py"], "--set job.job_name=VALUE"),
    (["jupyter-job", "-p", "a100"], "--set job.partition=VALUE"),
    (["sbatch", "--gres=gpu:2"], "--gpus-per-node N"),
    (["sbatch", "--hint=nomultithread"], "--extra-directives='--hint=nomultithread'"),
])
def test_an_sbatch_option_the_command_does_not_take_says_how(capsys, argv, says):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and says in capsys.readouterr().err


def test_practice_cluster_passes_its_options_on(monkeypatch):
    """docs/practice-cluster.md documents `practice-cluster up --no-image`; the CLI must take it."""
    seen = []
    monkeypatch.setattr("hpcwidgets.run.practice_cluster.main", lambda argv: seen.append(argv) or 0)
    assert main(["practice-cluster", "up", "--no-image", "--no-install"]) == 0
    assert seen == [["up", "--no-install", "--no-image"]]


@pytest.mark.parametrize("command,example", [(["sbatch"], "--set nodes=2"), (["workflow"], "--set job.nodes=2"),
                                             (["apptainer", "exec"], "--set cleanenv=true")])
def test_the_set_help_shows_a_form_the_command_takes(command, example, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert example in help_text
    if command == ["sbatch"]:   # and the example works
        assert main(["sbatch", example.split()[0], example.split()[1], "--commands", "python t.py"]) == 0


def test_a_code_switched_off_in_the_script_read_stays_off_in_the_script_written(capsys, tmp_path):
    """The suppression comment is not carried into the rewritten script; its check leaves the code out instead."""
    body = "#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=10\napptainer exec img_1.0.sif python t.py{}\n"
    off, on = tmp_path / "off.sh", tmp_path / "on.sh"
    off.write_text(body.format("  # hpcw: disable=HPC201"))
    on.write_text(body.format(""))
    code, out, err = run(capsys, "workflow", "--from", str(off))
    assert code == 0 and out.startswith("#!") and "HPC201" not in err
    code, out, err = run(capsys, "workflow", "--from", str(on))
    assert code == 1 and "hpcwidgets: lint: line" in err and "(of the script written)" in err and "HPC201" in err
