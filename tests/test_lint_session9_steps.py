"""Steps started beside the batch shell in other ways than srun … & (session-9 audit, items 3 and 4): a function
that runs srun called with &, a ( … ) or { …; } group holding srun run with &, and the srun GNU parallel or
xargs -P starts several times at once. HPC518 (steps side by side without their share) and HPC519 (background
steps without wait) see them as they see srun … &."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n"


def found(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


# --- HPC519: a function or a group run with & returns at once, like srun … &

FUNCTION_NO_WAIT = HEAD + """run_one() {
  srun --exact -n 1 -c 2 python run.py --cfg "$1"
}
run_one a.yaml &
run_one b.yaml &
"""


def test_a_function_run_with_amp_and_no_wait_is_reported_and_fixed():
    hit = found(FUNCTION_NO_WAIT, "HPC519")
    assert [f.line for f in hit] == [7]  # the first call, not the srun line in the function
    assert "run_one … &" in hit[0].message
    fixed = apply_fix(FUNCTION_NO_WAIT, hit[0].fix)
    assert fixed.splitlines()[-3:] == ["run_one a.yaml &", "run_one b.yaml &", "wait"]
    assert "HPC519" not in codes(fixed)


@pytest.mark.parametrize("group, how", [
    ("( srun --exact -n 1 python {0}.py; srun --exact -n 1 python {0}_post.py ) &", "( … ) &"),
    ("{{ srun --exact -n 1 python {0}.py; srun --exact -n 1 python {0}_post.py; }} &", "{ …; } &"),
])
def test_groups_of_steps_run_with_amp_and_no_wait_are_reported(group, how):
    script = HEAD + group.format("a") + "\n" + group.format("b") + "\necho started\n"
    hit = found(script, "HPC519")
    assert [f.line for f in hit] == [4] and how in hit[0].message
    fixed = apply_fix(script, hit[0].fix)
    assert fixed.splitlines()[-2:] == ["wait", "echo started"]
    assert "HPC519" not in codes(fixed)


def test_a_group_in_a_loop_gets_its_wait_after_the_loop():
    script = HEAD + "for i in 1 2; do\n  (\n    srun --exact -n 1 python a.py \"$i\"\n  ) &\ndone\n"
    hit = found(script, "HPC519")
    assert [f.line for f in hit] == [5]
    assert apply_fix(script, hit[0].fix).splitlines()[-2:] == ["done", "wait"]


def test_a_wait_inside_a_background_group_waits_only_for_that_group():
    inner = HEAD + "( srun --exact -n 1 python a.py & srun --exact -n 1 python b.py & wait ) &\n"
    assert [f.line for f in found(inner, "HPC519")] == [4]  # the batch shell still ends at once
    assert "HPC519" not in codes(inner + "wait\n")
    other = HEAD + "( srun --exact -n 1 python a.py; wait ) &\n( srun --exact -n 1 python b.py ) &\n"
    assert [f.line for f in found(other, "HPC519")] == [4]


@pytest.mark.parametrize("after", [
    "wait\n",                                                  # a wait after the calls
    "for p in $(jobs -p); do wait \"$p\"; done\n",            # a wait for each one
    "sleep 60\nsrun --overlap -n 1 python client.py\n",       # a foreground client: the server ends with it
    "PID=$!\nsleep 60\nkill \"$PID\"\n",                      # stopped on purpose
])
def test_calls_that_are_waited_for_or_meant_to_end_are_left_alone(after):
    assert "HPC519" in codes(FUNCTION_NO_WAIT)
    assert "HPC519" not in codes(FUNCTION_NO_WAIT + after)


def test_a_wait_in_a_function_counts_for_calls_too():
    assert "HPC519" in codes(FUNCTION_NO_WAIT + "echo done\n")
    finish = FUNCTION_NO_WAIT.replace(HEAD, HEAD + "finish() {\n  wait\n}\n") + "finish\n"
    assert "HPC519" not in codes(finish)


def test_a_function_called_in_the_foreground_or_never_starts_nothing_in_the_background():
    assert "HPC519" in codes(FUNCTION_NO_WAIT)
    assert "HPC519" not in codes(FUNCTION_NO_WAIT.replace(".yaml &", ".yaml"))
    # srun … & inside a function nobody calls: no step starts, and a wait after the definition would be no fix
    never = HEAD + "launch() {\n  srun --exact -n 1 python a.py &\n  srun --exact -n 1 python b.py &\n}\necho hi\n"
    assert "HPC519" not in codes(never)


def test_parallel_and_xargs_wait_for_their_steps_unless_run_with_amp():
    fg = HEAD + "parallel -j 4 srun --exact -n 1 ./task {} ::: 1 2 3 4\n"
    assert "HPC519" not in codes(fg)
    hit = found(fg.replace(" 4\n", " 4 &\n"), "HPC519")
    assert [f.line for f in hit] == [4] and "parallel -j 4 … &" in hit[0].message
    assert apply_fix(fg.replace(" 4\n", " 4 &\n"), hit[0].fix).endswith("&\nwait\n")


# --- HPC518: the same forms start steps side by side

FUNCTION_SEEDS = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --gres=gpu:4
train_seed() {
  srun OPTS python train.py --seed "$1"
}
for s in 0 1 2 3; do train_seed "$s" & done
wait
"""


def test_a_function_called_with_amp_in_a_loop_runs_its_steps_one_after_another():
    hit = found(FUNCTION_SEEDS.replace("OPTS", "-n 1"), "HPC518")
    assert [f.line for f in hit] == [6]  # at the srun to change, naming the call that starts it
    assert "train_seed … & (line 8)" in hit[0].message and "on every pass of the loop" in hit[0].message
    assert "--exact" in hit[0].message and "--gpus=1" in hit[0].message
    assert "HPC518" not in codes(FUNCTION_SEEDS.replace("OPTS", "--exact -n 1 -c 1 --gpus=1"))


def test_a_function_called_several_times_is_reported_once():
    script = HEAD + "run() { srun -n 1 python run.py \"$1\"; }\nrun a &\nrun b &\nrun c &\nwait\n"
    assert [f.line for f in found(script, "HPC518")] == [4]


def test_groups_run_with_amp_run_beside_each_other():
    script = HEAD + "( srun -n 1 python a.py; srun -n 1 python a2.py ) &\n( srun -n 1 python b.py ) &\nwait\n"
    assert [f.line for f in found(script, "HPC518")] == [4, 4, 5]
    one = HEAD + "( srun -n 1 python a.py; srun -n 1 python a2.py ) &\nwait\n"
    assert "HPC518" not in codes(one)  # one group: its steps run one after another on purpose


PARALLEL = HEAD + "module load parallel\n{tool} srun {opts} ./task {{}} ::: $(seq 1 100)\n"


@pytest.mark.parametrize("tool", ['parallel -j "$SLURM_NTASKS"', "parallel", "parallel --jobs=8"])
def test_gnu_parallel_starting_srun_without_exact_runs_the_steps_one_after_another(tool):
    hit = found(PARALLEL.format(tool=tool, opts="-N1 -n1"), "HPC518")
    assert [f.line for f in hit] == [5]
    assert "runs this srun several times at once" in hit[0].message and "--exact" in hit[0].message
    assert "HPC518" not in codes(PARALLEL.format(tool=tool, opts="--exact -N1 -n1 -c1"))


def test_parallel_one_at_a_time_is_not_side_by_side():
    assert "HPC518" in codes(PARALLEL.format(tool="parallel -j 2", opts="-n1"))
    assert "HPC518" not in codes(PARALLEL.format(tool="parallel -j 1", opts="-n1"))


def test_parallel_with_its_command_in_variables_is_read():
    script = HEAD + ('srun="srun -N1 -n1"\nparallel="parallel --delay .2 -j $SLURM_NTASKS --joblog r.log --resume"\n'
                     '$parallel "$srun ./runtask.sh {1} > runtask.{1}.log" ::: {1..128}\n')
    assert [f.line for f in found(script, "HPC518")] == [6]
    assert "HPC518" not in codes(script.replace('srun="srun ', 'srun="srun --exclusive '))


def test_parallel_running_a_function_that_runs_srun():
    script = HEAD + "job() {\n  srun -n 1 ./task \"$1\"\n}\nexport -f job\nparallel -j 4 job ::: 1 2 3 4\n"
    hit = found(script, "HPC518")
    assert [f.line for f in hit] == [5] and "(line 8)" in hit[0].message
    assert "HPC518" not in codes(script.replace("srun -n 1", "srun --exact -n 1"))


XARGS = "seq 1 100 | xargs -P 8 -I{} srun -n 1 ./task {}"


@pytest.mark.parametrize("line", [XARGS, XARGS.replace("-P 8", "-P8"),
                                  "seq 1 100 | xargs --max-procs=8 -I{} sh -c 'srun -n 1 ./task {} > {}.log'"])
def test_xargs_P_starting_srun_without_exact_runs_the_steps_one_after_another(line):
    hit = found(HEAD + line + "\n", "HPC518")
    assert [f.line for f in hit] == [4] and "xargs" in hit[0].message


@pytest.mark.parametrize("variant", [XARGS.replace("-n 1", "--exact -n 1"),
                                     XARGS.replace("-P 8 ", ""),      # one at a time without -P
                                     XARGS.replace("-P 8", "-P 1")])
def test_xargs_with_their_share_or_one_at_a_time_is_left_alone(variant):
    assert "HPC518" in codes(HEAD + XARGS + "\n")
    assert "HPC518" not in codes(HEAD + variant + "\n")


@pytest.mark.parametrize("share", ["export SLURM_EXACT=1\n", "export SRUN_CPUS_PER_TASK=1\n"])
def test_a_share_given_through_the_environment_counts_for_parallel(share):
    script = PARALLEL.format(tool="parallel", opts="-n1")
    assert "HPC518" in codes(script)
    assert "HPC518" not in codes(script.replace("module load parallel\n", share + "module load parallel\n"))
    assert "HPC518" not in codes(script.replace("\nparallel ", "\nSLURM_EXACT=1 parallel "))


def test_parallel_on_several_nodes_is_left_alone():
    script = PARALLEL.format(tool="parallel", opts="-N1 -n1")
    assert "HPC518" in codes(script)
    assert "HPC518" not in codes(script.replace("--nodes=1", "--nodes=2"))


def test_a_function_that_calls_itself_is_read_once():
    script = HEAD + "f() {\n  f &\n  srun -n 1 ./task\n}\nf &\nf &\nwait\n"
    assert [f.line for f in found(script, "HPC518")] == [6]
