"""The shell lexer and script reader (hpcwidgets.parse.lexer)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import need_tool
from hpcwidgets.errors import ParseError
from hpcwidgets.parse.lexer import (Command, Script, Word, directive_words, first_command_line, lex_command,
                                    lex_script, lex_word, literal_value)
from hpcwidgets.render.quote import expand, quote
from hpcwidgets.spec import Verbatim

SEED = Path("/work/shared/seed/000_232e9879c9e13462.txt")

# The multi-node slide of the seed deck, as printed there (kept inline so the test runs anywhere).
MULTI_NODE = """\
#!/bin/bash
#SBATCH --job-name=dist-ml-train
#SBATCH --nodes=2                # Request 2 nodes
#SBATCH --ntasks-per-node=4      # 4 tasks (processes) per node
#SBATCH --gres=gpu:4             # 4 GPUs per node (total 8 GPUs)
#SBATCH --cpus-per-task=2        # 2 CPUs per task
#SBATCH --partition=gpu-multi    # Example partition for multi-node GPU jobs

module load apptainer

CONTAINER_IMAGE=/path/to/your/ml_container.sif
# Script should handle distributed setup (e.g., using torchrun environment variables)

# srun will launch 'ntasks-per-node' copies of this command on each node
srun apptainer run --nv \\
  --bind /path/to/data:/data \\
  $CONTAINER_IMAGE \\
  torchrun --nnodes=$SLURM_NNODES \\
           --nproc_per_node=$SLURM_NTASKS_PER_NODE \\
           --rdzv_id=$SLURM_JOB_ID \\
           --rdzv_backend=c10d \\
           --rdzv_endpoint=$SLURM_STEP_NODELIST:29500 \\
           /path/to/your/distributed_train.py
"""

# A 60-line job script in the style of the ones researchers bring (the lexer's benchmark input).
REALISTIC = """\
#!/bin/bash
#SBATCH --job-name=dist-ml-train
#SBATCH --nodes=2                # Request 2 nodes
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4             # 4 GPUs per node
#SBATCH --cpus-per-task=16
#SBATCH --partition=gpu-multi
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

module purge
module load apptainer/1.3.4

export APPTAINER_CACHEDIR="$SCRATCH/$USER/.apptainer"
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
CONTAINER_IMAGE=$SCRATCH/$USER/sif/pytorch_24.05.sif
DATA_DIR=/project/data/imagenet
OUT_DIR="$SCRATCH/runs/$SLURM_JOB_ID"
mkdir -p "$OUT_DIR" logs

head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
port=29500
echo "head node: $head:$port"   # rendezvous endpoint

nodes=( $(scontrol show hostnames "$SLURM_JOB_NODELIST") )
for n in "${nodes[@]}"; do
  echo "node $n"
done

if [[ ! -f "$CONTAINER_IMAGE" ]]; then
  echo "missing image $CONTAINER_IMAGE" >&2
  exit 1
fi

cat > "$OUT_DIR/config.yaml" <<EOF
epochs: 10
lr: 0.001
data: $DATA_DIR
EOF

srun --ntasks-per-node=1 apptainer exec --nv \\
  --bind "$DATA_DIR":/data:ro \\
  --bind "$OUT_DIR":/out \\
  "$CONTAINER_IMAGE" \\
  torchrun --nnodes="$SLURM_NNODES" \\
           --nproc-per-node=4 \\
           --rdzv-id="$SLURM_JOB_ID" \\
           --rdzv-backend=c10d \\
           --rdzv-endpoint="$head:$port" \\
           /out/train.py --config /out/config.yaml --data /data

srun bash -c 'echo "rank $SLURM_PROCID on $(hostname)"' | sort > "$OUT_DIR/ranks.txt"
status=$?
[ "$status" -eq 0 ] && echo ok || echo failed
case "$status" in
  0) echo "done";;
  *) echo "exit $status";;
esac
wait
"""


def code(script: Script) -> list[Command]:
    return list(script.code)


def values(cmd: Command) -> list[str]:
    return [w.value for w in cmd.words]


# ---------------------------------------------------------------------------------------------
# whole scripts


def test_multi_node_seed_script_structure():
    script = lex_script(MULTI_NODE)
    assert script.text == MULTI_NODE
    kinds = [c.kind for c in script.commands]
    assert kinds[:8] == ["shebang"] + ["directive"] * 6 + ["blank"]
    assert [c.line for c in script.directives] == [2, 3, 4, 5, 6, 7]
    assert first_command_line(script) == 9
    module, image, srun = code(script)
    assert values(module) == ["module", "load", "apptainer"]
    assert image.words == () and image.assignments[0][0] == "CONTAINER_IMAGE"
    assert image.assignments[0][1].value == "/path/to/your/ml_container.sif"
    assert (srun.line, srun.end_line) == (15, 23)
    assert srun.name == "srun"
    assert values(srun) == [
        "srun", "apptainer", "run", "--nv", "--bind", "/path/to/data:/data", "$CONTAINER_IMAGE", "torchrun",
        "--nnodes=$SLURM_NNODES", "--nproc_per_node=$SLURM_NTASKS_PER_NODE", "--rdzv_id=$SLURM_JOB_ID",
        "--rdzv_backend=c10d", "--rdzv_endpoint=$SLURM_STEP_NODELIST:29500", "/path/to/your/distributed_train.py"]
    endpoint = srun.words[12]
    assert (endpoint.line, endpoint.col) == (22, 12)
    assert endpoint.raw == "--rdzv_endpoint=$SLURM_STEP_NODELIST:29500"
    assert not endpoint.quoted and not endpoint.verbatim
    torchrun = srun.words[7]
    assert (torchrun.line, torchrun.col) == (18, 3)
    assert srun.text.startswith("srun apptainer run --nv \\\n") and srun.text.endswith("distributed_train.py\n")


def test_multi_node_script_is_the_one_in_the_seed_deck():
    if not SEED.exists():
        pytest.skip(f"seed deck {SEED} is not on this machine")
    deck = SEED.read_text()
    assert MULTI_NODE in deck.replace("\n```", "\n")  # the block is copied verbatim from the deck


def test_every_line_is_covered_exactly_once_and_in_order():
    script = lex_script(REALISTIC)
    assert script.text == REALISTIC
    lines_seen: list[int] = []
    for c in script.commands:
        assert c.text, c
        assert c.line <= c.end_line
        assert c.text == REALISTIC[c.offset:c.offset + len(c.text)]
        lines_seen.extend(range(c.line, c.end_line + 1))
    # lines only repeat where several commands share one line (`a && b || c`, `cmd | sort`)
    assert sorted(set(lines_seen)) == list(range(1, REALISTIC.count("\n") + 1))
    shared = {line for line in lines_seen if lines_seen.count(line) > 1}
    assert shared == {53, 55}


def test_realistic_script_commands():
    script = lex_script(REALISTIC)
    by_line = {c.line: c for c in script.commands}
    assert by_line[15].assignments[0][0] == "APPTAINER_CACHEDIR"
    assert by_line[15].assignments[0][1].value == "$SCRATCH/$USER/.apptainer"
    omp = by_line[16].assignments[0][1]
    assert omp.verbatim and omp.value == Verbatim("${SLURM_CPUS_PER_TASK:-1}")
    head = by_line[22].assignments[0]
    assert head[0] == "head" and head[1].verbatim
    assert head[1].raw == '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
    assert by_line[24].comment == "# rendezvous endpoint"
    assert values(by_line[24]) == ["echo", "head node: $head:$port"]
    loop = by_line[27]
    assert (loop.kind, loop.end_line) == ("compound", 29)
    assert by_line[31].kind == "compound" and by_line[31].end_line == 34
    cat = by_line[36]
    assert (cat.kind, cat.end_line) == ("simple", 40)
    here = [r for r in cat.redirects if r.op == "<<"][0]
    assert here.heredoc == "epochs: 10\nlr: 0.001\ndata: $DATA_DIR\n" and here.expands
    srun = by_line[42]
    assert srun.end_line == 51 and "--rdzv-endpoint=$head:$port" in values(srun)
    assert first_command_line(script) == 10
    assert [c.joined_by for c in script.commands if c.line == 55] == ["&&", "||", ""]


def test_srun_bash_c_keeps_the_inner_script_as_one_value():
    double = lex_command('srun bash -c "python train.py --rank $SLURM_PROCID; hostname"')
    assert values(double)[-1] == "python train.py --rank $SLURM_PROCID; hostname"
    single = lex_command("srun bash -c 'python train.py --rank $SLURM_PROCID'")
    assert values(single)[-1] == "python train.py --rank \\$SLURM_PROCID"  # not expanded by the batch shell
    assert expand(values(single)[-1], {"SLURM_PROCID": "0"}) == "python train.py --rank $SLURM_PROCID"


def test_head_node_command_substitution():
    cmd = lex_command('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)')
    assert cmd.words == () and cmd.joined_by == ""
    (name, word), = cmd.assignments
    assert name == "head" and word.verbatim and isinstance(word.value, Verbatim)
    assert word.value == '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
    nested = lex_script('x="$(echo "$(date)" \')\')"; echo "$x"').commands
    assert nested[0].assignments[0][1].verbatim and nested[0].joined_by == ";"
    assert values(nested[1]) == ["echo", "$x"]


def test_text_is_reproduced_for_tricky_layouts():
    texts = [
        "", "\n", "  \n\t\n", "echo a", "a; b;c\n", "a && \\\n  b\n", "a |\n\n  b\n", "x=1 # c\n  # indented\n",
        "cat <<A <<-B; echo x\nbody a\nA\n\tbody b\n\tB\necho after\n", "f() { echo; }\n", "no newline at end   ",
        "if true; then\n  cat <<'E'\n fi ) ' unbalanced\nE\nfi\n",
    ]
    for text in texts:
        assert lex_script(text).text == text, text


# ---------------------------------------------------------------------------------------------
# kinds, comments and directives


def test_kinds_of_lines():
    text = ("#!/bin/bash\n#SBATCH -N 2\n\n# plain\n  #SBATCH --indented-is-a-comment\n#sbatch lower\necho hi\n"
            "#!not-a-shebang\n")
    kinds = [(c.kind, c.line) for c in lex_script(text).commands]
    assert kinds == [("shebang", 1), ("directive", 2), ("blank", 3), ("comment", 4), ("comment", 5), ("comment", 6),
                     ("simple", 7), ("comment", 8)]


def test_trailing_comment_is_recorded_and_hash_inside_words_is_not_a_comment():
    cmd = lex_command('echo a#b "#c" \\#d ${#x} # the comment')
    assert cmd.comment == "# the comment"
    assert [w.raw for w in cmd.words] == ["echo", "a#b", '"#c"', "\\#d", "${#x}"]
    assert values(cmd)[:4] == ["echo", "a#b", "#c", "#d"]


def test_directive_words():
    script = lex_script("#SBATCH --job-name=x  # comment\n#SBATCH -N 2\n#SBATCH --gres=gpu:4\n"
                        "#SBATCH --comment=\"two words\" --output=$HOME/%j.out\n#SBATCH --job-name=run#1 --ignored\n"
                        "#SBATCH -J a\\ b 'q#x'\n#SBATCH\n")
    words = [directive_words(c) for c in script.directives]
    assert [[w.value for w in ws] for ws in words] == [
        ["--job-name=x"], ["-N", "2"], ["--gres=gpu:4"],
        ["--comment=two words", "--output=\\$HOME/%j.out"],  # sbatch does not expand variables
        ["--job-name=run"],  # sbatch ends the line at an unquoted '#', even inside a word
        ["-J", "a b", "q#x"], []]
    assert [(w.line, w.col) for w in words[1]] == [(2, 9), (2, 12)]
    assert words[3][0].quoted and not words[1][0].quoted


def test_directive_words_errors():
    bad = lex_script("#SBATCH --job-name='open\n").commands[0]
    with pytest.raises(ParseError) as err:
        directive_words(bad)
    assert err.value.line == 1 and "unmatched" in str(err.value)
    with pytest.raises(ParseError, match="not an #SBATCH directive"):
        directive_words(lex_command("echo hi"))


def test_first_command_line_ignores_later_directives():
    script = lex_script("#!/bin/bash\n\n#SBATCH -N 1\n# note\nmodule load x\n#SBATCH -N 4\n")
    assert first_command_line(script) == 5
    assert [c.line for c in script.directives] == [3, 6]
    assert first_command_line(lex_script("#!/bin/bash\n#SBATCH -N 1\n")) == 0


# ---------------------------------------------------------------------------------------------
# separators, assignments, redirections


def test_separators_split_commands_and_record_the_operator():
    text = "module load x && srun a | tee log; echo ok & wait || echo bad |& cat\n"
    script = lex_script(text)
    assert [(c.name, c.joined_by) for c in script.commands] == [
        ("module", "&&"), ("srun", "|"), ("tee", ";"), ("echo", "&"), ("wait", "||"), ("echo", "|&"), ("cat", "")]
    assert all(c.line == 1 == c.end_line for c in script.commands)
    assert script.commands[0].text == "module load x && "
    assert [c.col for c in script.commands] == [1 + text.index(w) for w in ("module", "srun", "tee", "echo ok",
                                                                              "wait", "echo bad", "cat")]


def test_and_at_end_of_line_continues_on_the_next():
    script = lex_script("mkdir -p out &&\n  cd out\n")
    first, second = script.commands
    assert (first.joined_by, first.text, first.end_line) == ("&&", "mkdir -p out &&\n", 1)
    assert (second.name, second.line, second.col) == ("cd", 2, 3)


def test_assignments():
    prefix = lex_command("OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=0,1 python train.py")
    assert [(n, w.value) for n, w in prefix.assignments] == [("OMP_NUM_THREADS", "1"), ("CUDA_VISIBLE_DEVICES", "0,1")]
    assert values(prefix) == ["python", "train.py"]
    alone = lex_command('OUT="$SCRATCH/run 1"')
    assert alone.words == () and alone.assignments[0][1].value == "$SCRATCH/run 1"
    assert (alone.assignments[0][1].line, alone.assignments[0][1].col) == (1, 5)
    exported = lex_command("export A=1 PATH=$HOME/bin:$PATH B")
    assert values(exported) == ["export", "A=1", "PATH=$HOME/bin:$PATH", "B"]
    assert [(n, w.value) for n, w in exported.assignments] == [("A", "1"), ("PATH", "$HOME/bin:$PATH")]
    for builtin in ("local", "readonly", "declare -x", "typeset"):
        cmd = lex_command(f"{builtin} X='a b'")
        assert cmd.assignments[0][0] == "X" and cmd.assignments[0][1].value == "a b", builtin
    not_first = lex_command("echo A=1")
    assert not_first.assignments == () and values(not_first) == ["echo", "A=1"]
    array = lex_command('files=(a "b c" *.txt)')
    assert array.assignments[0][1].verbatim and array.assignments[0][1].raw == '(a "b c" *.txt)'
    empty = lex_command("EMPTY= cmd")
    assert empty.assignments[0][1].value == "" and values(empty) == ["cmd"]
    appended = lex_command("PATH+=:/opt/bin")
    assert appended.assignments[0] == ("PATH", appended.assignments[0][1])
    assert appended.assignments[0][1].value == ":/opt/bin"
    tilde = lex_command("CACHE=~/cache")
    assert tilde.assignments[0][1].verbatim


def test_redirections_are_separate_from_words():
    cmd = lex_command("python train.py > out.log 2>&1 < in.txt >> more &> both 3<> rw")
    assert values(cmd) == ["python", "train.py"]
    assert [(r.fd, r.op, r.target.value) for r in cmd.redirects] == [
        (None, ">", "out.log"), (2, ">&", "1"), (None, "<", "in.txt"), (None, ">>", "more"), (None, "&>", "both"),
        (3, "<>", "rw")]
    assert cmd.redirects[1].raw == "2>&1" and cmd.redirects[1].col == 27
    spaced = lex_command("echo 2 > x")  # "2 >" is an argument and a redirection
    assert values(spaced) == ["echo", "2"] and spaced.redirects[0].fd is None


def test_heredocs():
    text = ("cat <<EOF > job.yaml\nname: $NAME\nit's fine\nEOF\n"
            "python - <<'PY'\nprint(\"$HOME\")\nPY\n"
            "\tcat <<-END\n\t\tindented\n\tEND\n"
            "paste <(echo) <<A <<\"B\"\na\nA\nb\nB\necho after\n")
    script = lex_script(text)
    assert script.text == text
    cat, py, tab, paste, after = script.commands
    assert cat.redirects[0].heredoc == "name: $NAME\nit's fine\n" and cat.redirects[0].expands
    assert (cat.line, cat.end_line) == (1, 4)
    assert py.redirects[0].heredoc == 'print("$HOME")\n' and not py.redirects[0].expands
    assert py.redirects[0].target.value == "PY"
    assert tab.redirects[0].heredoc == "\t\tindented\n"
    assert [r.heredoc for r in paste.redirects] == ["a\n", "b\n"]
    assert paste.words[1].verbatim  # process substitution
    assert (after.name, after.line) == ("echo", 16)


def test_heredoc_inside_a_loop_is_part_of_the_compound_command():
    text = "for n in a b; do\n  cat <<EOF\n  done ) '\nEOF\ndone\necho next\n"
    loop, nxt = code(lex_script(text))
    assert (loop.kind, loop.line, loop.end_line) == ("compound", 1, 5)
    assert loop.redirects[0].heredoc == "  done ) '\n"
    assert nxt.line == 6


# ---------------------------------------------------------------------------------------------
# compound commands


@pytest.mark.parametrize("text, end_line", [
    ("if [ -d x ]; then\n  echo yes\nelif [[ $a == b && $c ]]; then\n  :\nelse\n  echo no\nfi\n", 7),
    ("for f in *.txt; do\n  wc -l \"$f\"\ndone\n", 3),
    ("for ((i = 0; i < 3; i++)); do echo $i; done\n", 1),
    ("while read -r line; do\n  echo \"$line\"\ndone < list.txt\n", 3),
    ("until false; do break; done\n", 1),
    ("case $1 in\n  a|b) echo ab;;\n  (c) echo c;;\n  *) if true; then echo x; fi;;\nesac\n", 5),
    ("select x in a b; do echo $x; done\n", 1),
    ("{ echo a; echo }; } > log 2>&1\n", 1),
    ("( cd /tmp && make )\n", 1),
    ("(( count += 1 ))\n", 1),
    ("[[ -f $x ]]\n", 1),
    ("setup() {\n  module load x\n}\n", 3),
    ("function cleanup\n{\n  rm -rf \"$TMP\"\n}\n", 4),
    ("function f() ( echo sub )\n", 1),
    ("if true; then\n  for i in 1 2; do\n    case $i in 1) echo one;; esac\n  done\nfi\n", 5),
])
def test_compound_commands_are_one_unit(text, end_line):
    script = lex_script(text)
    assert script.text == text
    (cmd,) = script.commands
    assert (cmd.kind, cmd.line, cmd.end_line, cmd.text) == ("compound", 1, end_line, text)
    assert cmd.assignments == ()


def test_compound_command_details():
    loop = lex_command("for n in ${nodes[@]}; do srun -w $n hostname; done > hosts.txt &")
    assert "srun" in values(loop) and loop.joined_by == "&"
    assert [(r.op, r.target.value) for r in loop.redirects] == [(">", "hosts.txt")]
    guarded = lex_script("[[ -d $OUT ]] || mkdir -p $OUT\n").commands
    assert [(c.kind, c.joined_by) for c in guarded] == [("compound", "||"), ("simple", "")]


def test_arrays_and_parameter_forms():
    cmd = lex_command('torchrun "${ARGS[@]}" ${#ARGS[@]} "${ARGS[0]}" "$@" $* "${1}" ${X:-default} ${X%/*} $((1 + 2))')
    assert all(w.verbatim for w in cmd.words[1:]), [w.raw for w in cmd.words if not w.verbatim]
    assert all(isinstance(w.value, Verbatim) and w.value == w.raw for w in cmd.words[1:])


# ---------------------------------------------------------------------------------------------
# words and the value language

WORDS = [
    ('"$SCRATCH"\'/my dir\'', "$SCRATCH/my dir", True),
    ("'$HOME'", "\\$HOME", True),
    ("a\\ b", "a b", True),
    ("$'\\n'", "\n", True),
    ("$'a\\tb\\x41\\101\\u00e9\\\\\\''", "a\tbAAé\\'", True),
    ("plain/path-1.0:x,y@z%", "plain/path-1.0:x,y@z%", False),
    ("$SLURM_STEP_NODELIST:29500", "$SLURM_STEP_NODELIST:29500", False),
    ('"${A}"x', "${A}x", True),
    ('"$A"B', "${A}B", True),  # the reference must not run into the next letter
    ("'$'5", "$5", True),  # a dollar before a digit needs no escape
    ("'${X}'", "\\${X}", True),
    ("'${1}'", "${1}", True),
    ('"\\$HOME"', "\\$HOME", True),
    ('"a\\b\\"c\\\\"', 'a\\b"c\\', True),
    ("'\\$x'", "\\\\$x", True),  # literal backslash, literal dollar
    ("\"it's\"", "it's", True),
    ("''", "", True),
    ('""', "", True),
    ("x$", "x$", False),
    ('"$"', "$", True),
    ("a\\\nb", "ab", False),  # a continuation inside a word disappears
    ("$\"locale $A\"", "locale $A", True),
    ("[", "[", False),
    ("]]", "]]", False),
    ("{", "{", False),
    ("a{b}c", "a{b}c", False),
    ("x~y", "x~y", False),
]


@pytest.mark.parametrize("raw, value, quoted", WORDS)
def test_word_values(raw, value, quoted):
    word = lex_word(raw)
    assert (word.raw, word.value, word.quoted, word.verbatim) == (raw, value, quoted, False)


VERBATIM = ["$(pwd)", "`date`", "$((1+2))", "$1", "$@", "$*", "$#", "$?", "$$", "$!", "$0", "${X:-d}", "${a[@]}",
            "\"${a[@]}\"", "*.py", "file?.txt", "[ab].txt", "{a,b}", "{1..3}", "~", "~/x", "<(ls)", ">(cat)",
            "pre$(cmd)post", "'\\'\"$A\"", "x=${#y}", "\"$(dirname \"$0\")\"", "$-"]


@pytest.mark.parametrize("raw", VERBATIM)
def test_verbatim_words(raw):
    word = lex_word(raw)
    assert word.verbatim and word.raw == raw
    assert isinstance(word.value, Verbatim) and word.value == raw


def test_lex_word_rejects_several_words():
    for bad in ["", "a b", "a;b", " a", "# c", "a|b"]:
        with pytest.raises(ParseError, match="one shell word"):
            lex_word(bad)


def test_literal_value():
    assert literal_value("$HOME/%j") == "\\$HOME/%j"
    assert literal_value("cost: 5$") == "cost: 5$"
    assert literal_value("a\\$") == "a\\\\$"
    assert expand(literal_value("a\\$b${c}$5"), {"b": "X", "c": "Y"}) == "a\\$b${c}$5"


SAFE_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)
PIECES = st.lists(st.sampled_from(["$A", "${B}", "\\$", "$", "\\", "{", "}", "x", " ", "'", '"', "`", "\n", "\t",
                                   "$5", "é", "~", "*", "#", "=", "\r", "${", "$(", "!", "%", ":", "{C}", "_"]),
                  max_size=12).map("".join)
ENV = {"A": "alpha", "B": "b e t a", "C": "", "x": "ex", "_": "under"}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(SAFE_TEXT, PIECES, st.tuples(SAFE_TEXT, PIECES).map("".join)))
@example("\\$5")
@example("$$HOME")
@example("\\\\$A")
@example("a\x01$B")
def test_quote_then_lex_round_trips(value):
    word = lex_word(quote(value))
    assert not word.verbatim
    if "\\$" not in value:
        assert word.value == value
    # values that differ only in a redundant "\$" mean the same string to bash
    assert expand(word.value, ENV) == expand(value, ENV)
    assert lex_word(quote(word.value)).value == word.value


# ---------------------------------------------------------------------------------------------
# agreement with real bash


def bash_words(raws: list[str], env: dict[str, str]) -> list[str]:
    bash = need_tool("bash")
    script = "printf '%s\\0' " + " ".join(raws)
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", script], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    assert out[-1] == ""
    return out[:-1]


BASH_ENV = {"A": "alpha", "B": "b e t a", "HOME": "/home/u", "SCRATCH": "/scratch/u", "SLURM_PROCID": "3",
            "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}


def test_values_agree_with_bash_on_samples():
    raws = [raw for raw, _, _ in WORDS if raw not in ("[", "]]", "{")] + [
        '"$B"', '"${B}"x', "\"$A\"'$A'\\$A", "$'\\x41\\0ignored'", "'a'\"b\"c\\d", '"\\a\\$\\`"', "\"'\"",
        "--bind=\"$SCRATCH\":/data:ro", "\"x${A}y\"", "$'\\cA\\e\\E\\v\\f'", "\"$\"A", "'$'A", "\\$A"]
    words = [lex_word(r) for r in raws]
    assert not any(w.verbatim for w in words), [w.raw for w in words if w.verbatim]
    assert bash_words(raws, BASH_ENV) == [expand(w.value, BASH_ENV) for w in words]


ALNUM = "abcXYZ_019./:,=+-@%"
RAW_PIECE = st.one_of(
    st.text(ALNUM, min_size=1, max_size=6),
    st.text(st.characters(blacklist_characters="'\x00", blacklist_categories=("Cs",)), max_size=6).map(
        lambda s: f"'{s}'"),
    st.lists(st.one_of(st.text(st.characters(blacklist_characters='"\\$`!\x00', blacklist_categories=("Cs",)),
                               min_size=1, max_size=4),
                       st.sampled_from(["\\$", '\\"', "\\\\", "\\a", "$A", "${A}", "$B", "$ ", "$'", "\\\n"])),
             max_size=4).map(lambda parts: '"' + "".join(parts) + '"'),
    st.lists(st.sampled_from(["\\n", "\\t", "\\x41", "\\\\", "\\'", "a", "$", " ", "\\101", "\\u00e9"]),
             max_size=4).map(lambda parts: "$'" + "".join(parts) + "'"),
    st.sampled_from(["\\ ", "\\$", "\\\"", "\\'", "\\a", "\\\\", "$A", "${A}", "$HOME", "$/", "\\{"]),
)
RAW_WORD = st.lists(RAW_PIECE, min_size=1, max_size=5).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RAW_WORD, min_size=1, max_size=20))
def test_values_agree_with_bash_generated(raws):
    words = [lex_word(r) for r in raws]
    # bash drops an unquoted word that expands to nothing ($A0: an unset A0), so it has no value to compare
    plain = [(r, w) for r, w in zip(raws, words) if not w.verbatim and (w.quoted or expand(w.value, BASH_ENV))]
    if not plain:
        return
    got = bash_words([r for r, _ in plain], BASH_ENV)
    assert got == [expand(w.value, BASH_ENV) for _, w in plain]


def test_quoted_values_run_through_bash_unchanged():
    samples = ["a'b", 'say "hi"', "$A and \\$A", "back\\slash", "new\nline", "tab\there", "${B}x", "`id`", "$(id)",
               "*", "~", "$5", "100%", "é", "semi;colon", "\\$$A"]
    raws = [quote(s) for s in samples]
    values_ = [lex_word(r).value for r in raws]
    assert bash_words(raws, BASH_ENV) == [expand(s, BASH_ENV) for s in samples] == [expand(v, BASH_ENV)
                                                                                     for v in values_]


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("text, line, col, fragment", [
    ('echo "abc\nmore', 1, 6, "unterminated double quote"),
    ("echo ok\necho 'x", 2, 6, "unterminated single quote"),
    ("x=$(ls\n", 1, 3, "unterminated `$(`"),
    ("echo ${A", 1, 6, "unterminated `${`"),
    ("echo `date", 1, 6, "unterminated backtick"),
    ("echo $'a", 1, 6, "unterminated $'"),
    ("cat <<EOF\nbody\n", 1, 5, "here-document `<<EOF` has no closing line"),
    ("cat <<-'END'\nbody\n END\n", 1, 5, "has no closing line `END`"),
    ("if true; then\n  echo\n", 1, 1, "`if` is never closed"),
    ("for i in 1; do echo; dune\n", 1, 1, "`for` is never closed"),
    ("{ echo }\n", 1, 1, "`{` is never closed"),
    ("echo a\nfi\n", 2, 1, "unexpected `fi`"),
    ("make &&", 1, 6, "at the end of the script"),
    ("; echo", 1, 1, "unexpected `;`"),
    ("echo a )", 1, 8, "unexpected `)`"),
    ("echo >", 1, 6, "needs a target"),
    ("cat <<\n", 1, 5, "needs a delimiter"),
    ("f() echo\n", 1, 5, "function body"),
])
def test_parse_errors_carry_line_and_column(text, line, col, fragment):
    with pytest.raises(ParseError) as err:
        lex_script(text, source="job.sh")
    assert (err.value.line, err.value.column) == (line, col), str(err.value)
    assert fragment in err.value.message
    assert str(err.value).startswith(f"job.sh:{line}:{col}: ")


@pytest.mark.parametrize("text, words", [
    ("srun a\\", ["srun", "a"]),  # bash 5 drops a backslash that is the file's last byte
    ("srun a \\", ["srun", "a"]),  # alone as a word too: no empty argument
    ("srun a \\\n", ["srun", "a"]),
    ("srun a\\\\", ["srun", "a\\"]),  # an escaped backslash stays
])
def test_backslash_at_the_end_of_the_file_is_dropped(text, words):
    assert values(lex_command(text)) == words


def test_lex_command():
    cmd = lex_command("# leading comment\nsrun \\\n  --ntasks=2 \\\n  hostname  # trailing\n\n")
    assert (cmd.line, cmd.end_line, values(cmd), cmd.comment) == (2, 4, ["srun", "--ntasks=2", "hostname"],
                                                                   "# trailing")
    with pytest.raises(ParseError, match="found 2 commands"):
        lex_command("a; b")
    with pytest.raises(ParseError, match="found no command"):
        lex_command("# only a comment\n")
    with pytest.raises(ParseError):
        lex_script(b"echo")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# robustness: nothing but ParseError escapes, and text is always reproduced

SHELLISH_PIECES = list("ab $'\"\\`(){}[]<>|&;#\n\t=*?~-0!%:") + [
    "<<EOF", "\nEOF\n", "if ", "fi", "do ", "done", "#SBATCH ", "$(", "${", "case ", "esac", "\\\n"]
SHELLISH = st.lists(st.sampled_from(SHELLISH_PIECES), max_size=80).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
                     st.binary(max_size=200).map(lambda b: b.decode("latin-1")), SHELLISH)


def _only_parse_errors(text: str) -> None:
    try:
        script = lex_script(text)
    except ParseError as err:
        assert err.line >= 1 and err.column >= 1 and err.message
        return
    assert script.text == text
    for c in script.commands:
        if c.kind == "directive":
            try:
                directive_words(c)
            except ParseError:
                pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT)
def test_arbitrary_text_raises_only_parse_error(text):
    _only_parse_errors(text)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT)
def test_arbitrary_text_raises_only_parse_error_long(text):
    _only_parse_errors(text)


def test_deep_nesting_is_a_parse_error_not_a_crash():
    with pytest.raises(ParseError, match="nesting deeper"):
        lex_script('echo "$(' * 400 + ")\"" * 400)


def test_word_and_command_are_frozen():
    word = lex_word("a")
    with pytest.raises(AttributeError):
        word.value = "b"  # type: ignore[misc]
    assert isinstance(word, Word)
    cmd = lex_command("echo")
    with pytest.raises(AttributeError):
        cmd.kind = "blank"  # type: ignore[misc]
    assert re.fullmatch(r"simple", cmd.kind)


def test_bash_quirks():
    # only "${" nests inside ${…}: a bare "{" is literal, so the first "}" closes it
    cmd = lex_command('echo ${a:-{x}y} "${b:+{}}"')
    assert [w.raw for w in cmd.words] == ["echo", "${a:-{x}y}", '"${b:+{}}"']
    # reserved words are recognised after a line continuation is removed
    script = lex_script("if true; then echo; f\\\ni\necho after\n")
    assert [(c.kind, c.line, c.end_line) for c in script.commands] == [("compound", 1, 2), ("simple", 3, 3)]
    # "\r" is an ordinary character to bash (CRLF scripts fail there), so it stays in the value
    crlf = lex_script("module load x\r\n").commands[0]
    assert values(crlf) == ["module", "load", "x\r"]


def test_script_helpers():
    script = lex_script("#!/bin/bash\n# c\nfor i in 1 2; do\n  echo $i\ndone\nwait\n")
    assert [c.kind for c in script.code] == ["compound", "simple"]
    assert script.at_line(4) is script.commands[2] and script.at_line(6).name == "wait"
    assert script.at_line(99) is None
    assert not script.commands[1].is_code and script.commands[2].is_code
    assert script.commands[2].name == ""  # compound commands have no single name


def test_a_function_defined_inside_a_block() -> None:
    text = 'setup() {\n  log() { echo "[$(date)] $*"; }\n  log start\n}\nsetup\npython train.py\n'
    script = lex_script(text)
    assert [c.kind for c in script.code] == ["compound", "simple", "simple"]
    assert script.code[0].end_line == 4 and script.code[2].name == "python"


def test_a_continuation_inside_a_name_keeps_the_word_as_written():
    """bash removes backslash-newline before it reads names: "$A\\<newline>0" is $A0, not $A then 0."""
    for raw in ('"$A\\\n0"', "$A\\\n0"):
        assert lex_word(raw).verbatim, raw
    assert lex_word('"$A\\\n"').verbatim and not lex_word('"$A 0"').verbatim
