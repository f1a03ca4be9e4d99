"""PyTorch's distributed launcher, ``torchrun`` (also ``python -m torch.distributed.run``)."""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass

from ..errors import Problem
from ._meta import Spec, TextForm, opt
from ._words import Verbatim
from .common import extra_problems, kept_reference, option_like_operands

#: the shell variable the workflow script sets on the host to the first node of the allocation
HEAD_NODE_VAR = "head_node"
DEFAULT_RDZV_PORT = 29500
#: how a batch script sets the head node, on the host. ``sed -n 1p`` rather than ``head -n 1``: head
#: exits after one line, scontrol may then get SIGPIPE, and with ``set -o pipefail`` the job fails.
HEAD_NODE_LINE = f'{HEAD_NODE_VAR}=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)'
LAUNCHERS = ("torchrun", "python -m torch.distributed.run", "python3 -m torch.distributed.run")
#: how torchrun's options are spelled: PyTorch 2.0 added the hyphenated forms (--nproc-per-node; pytorch/pytorch#94505,
#: February 2023, asked for in #65052) and kept the underscores, which are all that PyTorch 1.x's torchrun reads
OPTION_STYLES = ("hyphens", "underscores")


_DIGITS = re.compile(r"\d+")
_HEAD_NODE_REF = re.compile(rf"\$(?:\{{{HEAD_NODE_VAR}\}}|{HEAD_NODE_VAR}(?![A-Za-z0-9_]))")
_NNODES = re.compile(r"\d+(:\d+)?")


#: options whose value must reach torchrun expanded: a literal $NAME there is never what was meant
_EXPANDED_BY_THE_SHELL = ("nnodes", "nproc_per_node", "rdzv_endpoint", "master_addr", "master_port", "node_rank")
_LITERAL_REF = re.compile(r"\\\$[A-Za-z_{]")


#: a port torchrun gets from the shell: a variable (``--master-port=$MASTER_PORT``; the quoting contract lets bash
#: expand it), or shell text read from a script (``$((20000 + SLURM_JOB_ID % 10000))``, ``${PORT:-29500}``, kept as
#: written); a form's other text is still refused, and a number still checked against 1-65535
PORT_REFERENCE_FORM = TextForm(re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})"),
                               "a variable ($MASTER_PORT)")
PORT_SHELL_FORM = TextForm(re.compile(r".*\$.*", re.S), "a port the shell computes", verbatim_only=True)

#: the fields a launcher's checks read, fetched in one call
_CHECKED = operator.attrgetter("script", "nnodes", "nproc_per_node", "standalone", "rdzv_backend", "rdzv_endpoint",
                               "node_rank", "master_addr", "master_port", "module", "no_python", "extra")
#: --node-rank, --master-addr and --master-port left out, as :meth:`Torchrun.ignored_options` reads them
_UNSET_STATIC_OPTIONS = ("", "", None)


def _int_or_none(text: str) -> int | None:
    return int(text) if _DIGITS.fullmatch(str(text)) else None


@dataclass(frozen=True)
class Torchrun(Spec):
    """``torchrun [options] SCRIPT [args…]``: starts ``nproc_per_node`` worker processes on this node.

    Single node: ``standalone`` (a private rendezvous on a free port, so two jobs on one node never
    clash). Several nodes: the ``c10d`` rendezvous at the head node, ``$head_node:29500``, which the
    batch script resolves on the host with ``scontrol show hostnames`` before the container starts.
    """

    kind = "torchrun"
    #: torchrun options the model has no field for that take the next word as their value (either spelling)
    other_value_options = frozenset({
        "--monitor-interval", "--start-method", "--event-log-handler", "--role", "--redirects", "-r",
        "-t", "--local-ranks-filter", "--duplicate-stdout-filters", "--duplicate-stderr-filters", "--local-addr",
        "--logs-specs", "--numa-binding", "--signals-to-handle", "--shutdown-timeout"})
    #: torchrun switches the model has no field for (either spelling): the script still follows them
    other_switch_options = frozenset({"--run-path", "--run_path", "--virtual-local-rank", "--virtual_local_rank"})
    #: an array or "$@" the reader cannot see into, before the script, holds options (torchrun "${DIST[@]}" train.py)
    lists_hold_options = True

    program: str = opt("torchrun", label="Launcher", role="program", choices=LAUNCHERS,
                       help="torchrun, or the same launcher as a module where the torchrun script is not on PATH.")
    standalone: bool = opt(False, label="Standalone (single node)", flag="--standalone",
                           help="One node only: a private rendezvous on a free local port; no endpoint needed.")
    nnodes: str = opt("", label="Nodes", flag="--nnodes", placeholder="2",
                      help="How many nodes take part: N, or MIN:MAX for elastic jobs; $SLURM_NNODES follows the job.")
    nproc_per_node: str = opt("", label="Processes per node", flag="--nproc-per-node", aliases=("--nproc_per_node",),
                              placeholder="4",
                              help="Workers on each node: the number of GPUs per node (or gpu, cpu, auto).")
    rdzv_backend: str = opt("", label="Rendezvous backend", flag="--rdzv-backend", aliases=("--rdzv_backend",),
                            choices=("c10d", "static", "etcd", "etcd-v2"),
                            help="How the nodes find each other; c10d needs no extra service.")
    rdzv_endpoint: str = opt("", label="Rendezvous endpoint", flag="--rdzv-endpoint", aliases=("--rdzv_endpoint",),
                             placeholder="$head_node:29500",
                             help="HOST:PORT of the head node (one host, never a node list).")
    rdzv_id: str = opt("", label="Rendezvous id", flag="--rdzv-id", aliases=("--rdzv_id",), placeholder="$SLURM_JOB_ID",
                       help="A name shared by all nodes of this run; the Slurm job id is unique.")
    rdzv_conf: str = opt("", label="Rendezvous options", flag="--rdzv-conf", aliases=("--rdzv_conf",), advanced=True,
                         help="Extra key=value settings, e.g. join_timeout=600.")
    max_restarts: int | None = opt(None, label="Restarts", flag="--max-restarts", aliases=("--max_restarts",), minimum=0,
                                   advanced=True, help="How often to restart all workers after a failure.")
    node_rank: str = opt("", label="Node rank (static only)", flag="--node-rank", aliases=("--node_rank",), advanced=True,
                         help="Only for the static backend; c10d assigns ranks itself and ignores this.")
    master_addr: str = opt("", label="Master address (static only)", flag="--master-addr", aliases=("--master_addr",),
                           advanced=True, help="Only for the static backend; c10d ignores it.")
    master_port: int | None = opt(None, label="Master port (static only)", flag="--master-port", aliases=("--master_port",),
                                  minimum=1, maximum=65535, advanced=True, placeholder="29500",
                                  text_forms=(PORT_REFERENCE_FORM, PORT_SHELL_FORM),
                                  help="Only for the static backend; c10d ignores it. A number, or a variable the job "
                                       "sets ($MASTER_PORT).")
    log_dir: str = opt("", label="Log directory", flag="--log-dir", aliases=("--log_dir",), path=True, advanced=True,
                       help="Directory for per-worker logs.")
    tee: str = opt("", label="Tee output", flag="--tee", choices=("0", "1", "2", "3"), advanced=True,
                   help="Copy worker stdout (1), stderr (2) or both (3) to the log files and the console.")
    module: bool = opt(False, label="Run as module", flag="--module", short="-m", advanced=True,
                       help="Treat the script as a Python module name (python -m …).")
    no_python: bool = opt(False, label="Not a Python script", flag="--no-python", aliases=("--no_python",), advanced=True,
                          help="Run the program directly instead of through python.")
    option_style: str = opt("hyphens", label="Option spelling", role="internal", choices=OPTION_STYLES, advanced=True,
                            help="hyphens: --nproc-per-node, read by PyTorch 2.0 and later; underscores: "
                                 "--nproc_per_node, also read by PyTorch 1.x (kept from a script written so).")
    extra: tuple[str, ...] = opt((), label="Other options", advanced=True,
                                 help="Further torchrun options written as they are (kept from a parsed command).")
    script: str = opt("", label="Training script", role="positional", path=True, placeholder="train.py",
                      help="The training script every worker runs.")
    args: tuple[str, ...] = opt((), label="Script arguments", role="rest", placeholder="--epochs 10",
                                help="Arguments passed to the training script.")

    @classmethod
    def single_node(cls, nproc_per_node: int | str, script: str, args: tuple[str, ...] = (), **kw) -> "Torchrun":
        return cls(standalone=True, nnodes="1", nproc_per_node=str(nproc_per_node), script=script, args=tuple(args), **kw)

    @classmethod
    def multi_node(cls, nnodes: int | str, nproc_per_node: int | str, script: str, args: tuple[str, ...] = (),
                   port: int = DEFAULT_RDZV_PORT, **kw) -> "Torchrun":
        """The correct multi-node launcher: c10d at the head node resolved on the host."""
        return cls(nnodes=str(nnodes), nproc_per_node=str(nproc_per_node), rdzv_backend="c10d",
                   rdzv_endpoint=f"${HEAD_NODE_VAR}:{port}", rdzv_id="$SLURM_JOB_ID", script=script,
                   args=tuple(args), **kw)

    def _spelled(self) -> dict[str, str]:
        """The flags as this launcher writes them (see :func:`~hpcwidgets.spec.argv.model_words`): with underscores
        when ``option_style`` says so, for the torchrun of PyTorch 1.x, which rejects ``--nproc-per-node`` (the
        hyphenated spellings came with PyTorch 2.0)."""
        return _underscored_flags() if self.option_style == "underscores" else {}

    @property
    def nnodes_int(self) -> int | None:
        """The node count when it is a literal number (``"2"``, ``"2:2"``), else None."""
        if ":" in self.nnodes:
            lo, _, hi = self.nnodes.partition(":")
            return _int_or_none(hi) if lo == hi else None
        return _int_or_none(self.nnodes) if self.nnodes else (1 if self.standalone else None)

    @property
    def nproc_int(self) -> int | None:
        return _int_or_none(self.nproc_per_node)

    def literal_references(self) -> list[Problem]:
        """Counts, host and port holding ``\\$NAME``, the literal text (a word read from single quotes): torchrun
        expands nothing, so it would wait for a host called $head_node or fail to read $SLURM_NNODES as a number."""
        if "\\$" not in f"{self.nnodes}{self.nproc_per_node}{self.rdzv_endpoint}{self.master_addr}{self.node_rank}":
            return []
        out = []
        for name in _EXPANDED_BY_THE_SHELL:
            value = getattr(self, name)
            if isinstance(value, str) and not isinstance(value, Verbatim) and _LITERAL_REF.search(value):
                text = value.replace("\\$", "$")
                flag = self.field_spec(name).info.flag
                out.append(Problem(name, f"gets the text {text} itself (from single quotes or \\$), and "
                                         f"torchrun does not expand variables; let the shell expand it: "
                                         f"{flag}=\"{text}\""))
        return out

    @property
    def uses_head_node(self) -> bool:
        """True when the endpoint (or, for the static rendezvous, --master-addr) refers to ``$head_node`` itself
        (not ``$head_node_ip``)."""
        return any(_HEAD_NODE_REF.search(str(v)) for v in (self.rdzv_endpoint, self.master_addr))

    def _no_meeting_point(self) -> list[Problem]:
        """Several nodes and no --rdzv-endpoint. The static rendezvous (torchrun's default backend) meets at
        --master-addr:--master-port instead (torch/distributed/run.py, ``get_rdzv_endpoint``), so a head node given
        there serves; c10d (and etcd) read --rdzv-endpoint alone and without it meet at localhost: every node
        waits by itself and the job hangs."""
        if self.rdzv_backend in ("", "static"):
            if self.master_addr:
                return []
            return [Problem("rdzv_endpoint", "several nodes need the head node's address: --master-addr=$head_node "
                                             "(the static rendezvous, torchrun's default, otherwise meets at "
                                             "127.0.0.1), or --rdzv-backend=c10d --rdzv-endpoint=$head_node:29500")]
        if self.master_addr:
            port = self.master_port if self.master_port not in (None, "") else DEFAULT_RDZV_PORT
            return [Problem("rdzv_endpoint", f"--rdzv-backend={self.rdzv_backend} ignores --master-addr (only the static "
                                             "rendezvous reads it) and without --rdzv-endpoint every node meets at "
                                             "localhost, so the job hangs; use "
                                             f"--rdzv-endpoint={self.master_addr}:{port}")]
        return [Problem("rdzv_endpoint", "several nodes need a rendezvous endpoint: the head node, e.g. $head_node:29500")]

    def ignored_options(self) -> tuple[str, ...]:
        """The fields of the options the rendezvous at --rdzv-endpoint never reads. c10d numbers the nodes itself and
        ignores all three; the static rendezvous (torchrun's default backend) still takes each node's --node-rank,
        but meets at the endpoint rather than at --master-addr:--master-port (torch/distributed/run.py,
        ``get_rdzv_endpoint``)."""
        if self.standalone or not self.rdzv_endpoint:
            return ()
        names = {"c10d": ("node_rank", "master_addr", "master_port"), "": ("master_addr", "master_port"),
                 "static": ("master_addr", "master_port")}.get(self.rdzv_backend, ())
        return tuple(name for name in names if getattr(self, name) not in ("", None))

    @property
    def options_out_of_sight(self) -> bool:
        """Whether options of this launch are held where a reader cannot see them: an array or the script's
        arguments (``"${DIST[@]}"``, ``"$@"``) or a variable kept as written among the options. An option it
        seems to lack may be there, so no check says it is missing."""
        return isinstance(self.extra, tuple) and any(kept_reference(e) for e in self.extra)

    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        (script, nnodes_text, nproc_text, standalone, backend, endpoint, rank, addr, port, module, no_python,
         extra) = _CHECKED(self)
        if not script:
            out.append(Problem("script", "a training script is required, e.g. train.py"))
        literal = self.literal_references()
        out += literal
        nproc = self.nproc_int
        if nproc_text and not (nproc is not None or nproc_text in ("gpu", "cpu", "auto")
                               or nproc_text.startswith("$")) and not literal:
            out.append(Problem("nproc_per_node", f"{nproc_text!r}: use a number, gpu, cpu or auto"))
        if nproc == 0:
            out.append(Problem("nproc_per_node", "must be at least 1 (one process per GPU, e.g. 4 on a 4-GPU node)"))
        if nnodes_text and not (_NNODES.fullmatch(nnodes_text) or nnodes_text.startswith("$")) and not literal:
            out.append(Problem("nnodes", f"{nnodes_text!r}: use N or MIN:MAX (e.g. 2 or 1:4)"))
        nnodes = self.nnodes_int
        low, _, high = nnodes_text.partition(":")
        if _NNODES.fullmatch(nnodes_text) and (int(low) == 0 or (high and int(high) < int(low))):
            out.append(Problem("nnodes", f"--nnodes={nnodes_text}: " + (
                "a job runs on at least one node; use 1 or more (e.g. 2)" if int(low) == 0 else
                f"the fewest nodes ({low}) is more than the most ({high}); write {high}:{low}")))
        multi = nnodes is None or nnodes > 1
        if standalone:
            if nnodes_text and nnodes != 1:
                out.append(Problem("standalone", "--standalone is for one node; for several use the c10d rendezvous at the head node"))
            for name in ("rdzv_backend", "rdzv_endpoint", "rdzv_id"):
                if getattr(self, name):
                    out.append(Problem(name, f"--standalone ignores --{name.replace('_', '-')}; remove it"))
        elif nnodes_text and multi and not endpoint and not self.options_out_of_sight:
            out += self._no_meeting_point()
        if not standalone and nnodes_text and multi and backend in ("", "static") \
                and rank in ("", None) and not self.options_out_of_sight:
            # torchrun's default backend is static: each node needs its own rank, else all are rank 0
            out.append(Problem("node_rank", "on several nodes the static rendezvous (torchrun's default without "
                                            "--rdzv-backend=c10d) needs each node's --node-rank, else every node "
                                            "is rank 0 and the job hangs; use --rdzv-backend=c10d "
                                            "--rdzv-endpoint=$head_node:29500, which numbers the nodes itself"))
        if endpoint and "NODELIST" in endpoint:
            out.append(Problem("rdzv_endpoint", f"'{endpoint}' is a node list, not one host; resolve the head node "
                                                "with scontrol show hostnames on the host and use $head_node:29500"))
        elif endpoint and isinstance(endpoint, str) and not literal:
            written = _as_bash_passes(endpoint)
            if written:
                out += _endpoint_problems(written, multi and not standalone)  # (a tuple: the same one each time)
        if (rank, addr, port) != _UNSET_STATIC_OPTIONS:  # (without them there is nothing a rendezvous could ignore)
            why = ("is ignored by the c10d rendezvous" if backend == "c10d"
                   else "is ignored: the static rendezvous meets at --rdzv-endpoint")
            out += [Problem(name, f"--{name.replace('_', '-')} {why}; remove it") for name in self.ignored_options()]
        if module and no_python:
            out.append(Problem("no_python", "--module and --no-python exclude each other"))
        if extra:
            out += extra_problems(extra, self.other_value_options, "torchrun")
        return out + option_like_operands(self, "script")

#: a host name torchrun takes at --rdzv-endpoint: labels, an IPv4 address or an IPv6 one
#: (torch/distributed/elastic/rendezvous/utils.py, ``parse_rendezvous_endpoint``)
_ENDPOINT_HOST = re.compile(r"[\w.:-]+")


def _as_bash_passes(endpoint: str) -> str:
    """The endpoint as torchrun gets it: a word read back from a script (:class:`Verbatim`) is shell text, whose one
    pair of outer quotes bash removes (``"$(hostname):29500"``); "" for one whose quoting only bash can undo."""
    if not isinstance(endpoint, Verbatim):
        return str(endpoint)
    text = str(endpoint).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return "" if any(q in text for q in "'\"\\") else text


@functools.lru_cache(maxsize=256)
def _endpoint_problems(endpoint: str, several_nodes: bool) -> tuple[Problem, ...]:
    """What torchrun refuses, or what cannot work, in a --rdzv-endpoint HOST[:PORT] whose parts are written out; a
    part that holds a shell expansion ($head_node, ${PORT}) is the job's to fill in and is left alone."""
    text = endpoint.strip()
    if text.startswith("[") and text.endswith("]"):  # an IPv6 address alone: torchrun's default port
        return ()
    host, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    example = "e.g. $head_node:29500"
    problems = []
    if colon and not port:
        problems.append(f"{endpoint!r} ends with ':' and names no port; write the port after it ({example}) or "
                        "leave the colon out for torchrun's default, 29400")
    elif port and "$" not in port and "`" not in port:
        if not port.isdigit() or not port.isascii():
            problems.append(f"the port in {endpoint!r}, {port!r}, is not a number; {example}")
        elif int(port) > 65535:
            problems.append(f"the port in {endpoint!r}, {port}, is above 65535, the highest there is; {example}")
        elif int(port) == 0 and several_nodes:
            problems.append(f"port 0 in {endpoint!r} has the head node take any free port, which the other nodes "
                            f"cannot know; name a fixed one, {example}")
    if not host:
        problems.append(f"{endpoint!r} names no host before the port; write the head node there ({example})")
    elif "$" not in host and "`" not in host and not _ENDPOINT_HOST.fullmatch(host):
        problems.append(f"the host in {endpoint!r}, {host!r}, is no host name or address torchrun takes (letters, "
                        f"digits, '.', '-' and ':'); {example}")
    return tuple(Problem("rdzv_endpoint", message) for message in problems)


@functools.cache
def _underscored_flags() -> dict[str, str]:
    """Each hyphenated flag and its underscore alias (``--nproc-per-node`` → ``--nproc_per_node``)."""
    return {f.info.flag: alias for f in Torchrun.field_specs() for alias in f.info.aliases
            if alias == "--" + f.info.flag[2:].replace("-", "_")}
