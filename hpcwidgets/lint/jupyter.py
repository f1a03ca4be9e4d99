"""Rules about secrets and Jupyter: passwords and tokens written in a script, and a Jupyter server started by a
job (its token, port, the ssh tunnel to it, and who can read the log that holds its URL).

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterator

from ..spec.jupyter import own_network_option, server_start
from . import Context, Fix, rule
from .catalogue import (GUESSABLE_TOKEN, _Inner, _REGISTRY_PASSWORD, _secret_message, _simple_commands, cached,
                        expanded_refs, guessable_token, is_literal, steps)
from .container_rules import _instance_of


_LOGIN = re.compile(r"\b(login|registry\s+login)\b")


@rule("HPC601", "registry-password-in-script", "error",
      summary="a container registry password is written in the script",
      why="Job scripts are copied to Slurm's spool, kept in sacct records, shared and committed to git; a password "
          "on a command line is also visible to every user in ps.",
      fix="Log in once interactively (apptainer registry login / --docker-login), or keep "
          "APPTAINER_DOCKER_PASSWORD in a file only you can read and source it.",
      catalogue=(19,),
      bad="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
export APPTAINER_DOCKER_USERNAME='$oauthtoken'
export APPTAINER_DOCKER_PASSWORD=nvapi-0123456789abcdef
[ -f pt.sif ] || apptainer pull pt.sif docker://nvcr.io/nvidia/pytorch:24.05-py3
""",
      good="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
source "$HOME/.config/ngc-credentials.sh"
[ -f pt.sif ] || apptainer pull pt.sif docker://nvcr.io/nvidia/pytorch:24.05-py3
""")
def _registry_password(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        for name, w in cmd.assignments:
            if _REGISTRY_PASSWORD.match(name) and is_literal(w.value) and str(w.value):
                yield cmd.line, f"{name} holds a password written in the script; keep it in a private file or log in interactively"
        words = [str(v) for v in cmd.argv]
        if _LOGIN.search(" ".join(words)):
            for i, word in enumerate(words):
                value = None
                if word in ("-p", "--password") and i + 1 < len(words):
                    value = words[i + 1]
                elif word.startswith("--password="):
                    value = word.partition("=")[2]
                if value is not None and is_literal(value):
                    yield cmd.line, "a registry password is written on the command line; use --password-stdin from a private file or an interactive login"
                    break


@rule("HPC602", "api-token-in-script", "error",
      summary="an API key or token (W&B, Hugging Face, cloud, a fixed Jupyter token) is written in the script, or a "
              "Jupyter token is made of what everyone can see ($USER, the job's id)",
      why="The script is copied to Slurm's spool, kept in job records, shared with colleagues and committed to git: "
          "the key leaks with it. A Jupyter token is the password to a shell as you: one written in the script "
          "(JUPYTER_TOKEN=…, --ServerApp.token=…) leaks the same way, and one made of your user name or the job's "
          "id (JUPYTER_TOKEN=$USER, --NotebookApp.token=${USER}) is known to everyone who runs squeue.",
      fix="Keep it out of the script: log in once (wandb login, huggingface-cli login stores it in your home), or "
          "source a file only you can read.",
      catalogue=(30,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
export WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
source "$HOME/.config/wandb.env"
python train.py
""")
def _api_token(ctx: Context) -> Iterator[Any]:
    for cmd in _simple_commands(ctx.parsed.lexed.code):  # (also in functions, ifs and loops, where the key is as plain)
        for name, w in cmd.assignments:
            message = _secret_message(name, w.value)
            if message:
                yield cmd.line, message
        words = [str(v) for v in cmd.argv]
        for i, word in enumerate(words):
            key, eq, value = word.partition("=")
            if eq and i > 0 and words[i - 1] in ("--env", "--set-env") and _secret_message(key, value):
                yield cmd.line, f"{key} is passed with its value on the command line; use --env-file with a private file"
        if len(words) >= 3 and words[0] == "wandb" and words[1] == "login" and is_literal(words[-1]) \
                and not words[-1].startswith("-") and len(words[-1]) >= 8:
            yield cmd.line, "wandb login with the key on the command line; run wandb login once interactively instead"
        if words[:2] in (["huggingface-cli", "login"], ["hf", "login"]) and "--token" in words:
            idx = words.index("--token")
            if idx + 1 < len(words) and is_literal(words[idx + 1]):
                yield cmd.line, "the Hugging Face token is written on the command line; log in once interactively instead"
    yield from _fixed_server_token(ctx)


def _fixed_server_token(ctx: Context) -> Iterator[Any]:
    """HPC602 for a Jupyter server given a token on its command line that anyone can know: written out
    (``--ServerApp.token=somepassword``) or made of public parts (``--NotebookApp.token=${USER}``)."""
    for cmd, words in _jupyter_commands(ctx):
        for key, trait, value in _jupyter_settings(words):
            if not (_SECRET_TRAIT.match(trait) and trait.endswith(".token")) or value in ("", "''", '""'):
                continue  # (an empty token is HPC603's)
            if is_literal(value):
                yield (cmd.line, f"{key}={value} is a fixed Jupyter token written in the script: anyone who reads the "
                                 "script (in git, in Slurm's records) can use the server as you; leave it out (Jupyter "
                                 "makes a random one) or make one when the job runs and export it as JUPYTER_TOKEN")
            elif guessable_token(value):
                yield cmd.line, f"{key}={value}: the token {GUESSABLE_TOKEN}"


def _jupyter_commands(ctx: Context) -> list[tuple[Any, list[str]]]:
    """Every command that starts a Jupyter server (``jupyter lab``, ``python -m jupyterlab`` …, also after a
    container or launcher, in a function or an ``if``, and in a ``bash -c`` script, where jobs often start it):
    the command and its words from the server's program on."""
    def make() -> list[tuple[Any, list[str]]]:
        source = ctx.parsed.source
        if "jupyter" not in source and "notebook" not in source and "nbclassic" not in source:
            return []  # most scripts: no server to look for (python -m notebook has no "jupyter")
        out = []
        for cmd in _simple_commands(ctx.parsed.lexed.code):
            words = [str(v) for v in cmd.argv]
            at = server_start(words)
            if at is not None:
                out.append((cmd, words[at:]))
        return out
    return cached(ctx, "jupyter_commands", make)


#: jupyter_server's aliases that take a value (``--port-retries 0`` sets ServerApp.port_retries); its other
#: options without a dot (``--no-browser``) are switches
_JUPYTER_ALIASES = {"--ip": "ServerApp.ip", "--port": "ServerApp.port", "--port-retries": "ServerApp.port_retries",
                    "--notebook-dir": "ServerApp.root_dir"}


def _jupyter_settings(words: list[str]) -> list[tuple[str, str, str]]:
    """The settings on a Jupyter command line as traitlets reads them: ``(option as written, Class.trait, value)``
    for ``--Class.trait=value``, ``--Class.trait value`` and the aliases in either form."""
    out = []
    i = 0
    while i < len(words):
        key, eq, value = words[i].partition("=")
        trait = _JUPYTER_ALIASES.get(key) or (key[2:] if key.startswith("--") and "." in key else "")
        if trait and not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
            i += 1
            value, eq = words[i], " "  # the space form: --ServerApp.token ''
        if trait and eq:
            out.append((key, trait, value))
        i += 1
    return out


#: the settings that hold the server's token or password
_SECRET_TRAIT = re.compile(r"^(ServerApp|NotebookApp|LabApp|IdentityProvider|PasswordIdentityProvider)\."
                           r"(token|password|hashed_password)$")


@rule("HPC603", "jupyter-without-token", "error",
      summary="JupyterLab on a compute node with its token (and password) switched off, or another web IDE without "
              "its login (code-server --auth none, rserver --auth-none=1)",
      why="Compute nodes are reachable by every user of the cluster: a server without a token gives anyone a shell "
          "as you, with your files and allocation. The same for the other editors people run in a job: code-server "
          "with --auth none (or auth: none in its config) and RStudio Server with --auth-none=1 open an editor and a "
          "terminal as you to whoever reaches the port.",
      fix="Keep Jupyter's random token (the default), or pass one through JUPYTER_TOKEN from a private file; "
          "bind to the node's own name rather than 0.0.0.0. Leave code-server's password login on (--auth password, "
          "with PASSWORD exported from a private file) and RStudio Server's PAM login (--auth-none=0 "
          "--auth-pam-helper-path=…, as the rocker images' recipe does).",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.port_retries=0 --ServerApp.token=''
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _no_token(ctx: Context) -> Iterator[Any]:
    yield from _ide_without_login(ctx)
    for cmd, words in _jupyter_commands(ctx):
        settings = _jupyter_settings(words)
        empty = [key for key, trait, value in settings
                 if _SECRET_TRAIT.match(trait) and trait.endswith(".token") and value in ("", "''", '""')]
        if empty:
            everywhere = any(trait == "ServerApp.ip" and value in ("0.0.0.0", "*") for _, trait, value in settings)
            yield (cmd.line, f"{empty[0]} is empty: anyone on the cluster"
                             f"{' (and on every network the node is on: --ip=0.0.0.0)' if everywhere else ''} can use this "
                             "server as you; keep the token")


#: web IDEs people run in a job, with the option and value that switch their login off, and what to say
_NO_LOGIN = {
    "code-server": ("--auth", "none", "code-server --auth none lets anyone who reaches the port use an editor and a "
                    "terminal as you; keep its password login (--auth password, with PASSWORD exported from a file "
                    "only you can read)"),
    "rserver": ("--auth-none", "1", "rserver --auth-none=1 lets anyone who reaches the port use RStudio and its "
                "terminal as you; keep its login: --auth-none=0 with --auth-pam-helper-path (the rocker images' "
                "recipe) and a password only you know"),
}


def _ide_without_login(ctx: Context) -> Iterator[Any]:
    """code-server --auth none and rserver --auth-none=1 (also in a container, a bash -c script or a function)."""
    source = ctx.parsed.source
    if not any(name in source for name in _NO_LOGIN):
        return
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = [str(v) for v in cmd.argv]
        names = [w.rsplit("/", 1)[-1] for w in words]
        for program, (option, value, message) in _NO_LOGIN.items():
            if program in names:
                rest = words[names.index(program) + 1:]
                if f"{option}={value}" in rest or any(a == option and b == value for a, b in zip(rest, rest[1:])):
                    yield cmd.line, message


@rule("HPC604", "jupyter-port-retries", "warning",
      summary="JupyterLab may move to another port than the one the tunnel command uses",
      why="When the port is taken Jupyter silently tries the next ones (port_retries defaults to 50), so the "
          "printed ssh -L command points at a port where nothing (or someone else's server) listens.",
      fix="Pass --ServerApp.port_retries=0 (Jupyter then fails loudly) and choose a free port in the script; for "
          "jupyter notebook, --NotebookApp.port_retries=0, which the classic Notebook (before version 7) reads and "
          "version 7 passes on.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
port=8888
echo "ssh -N -L 8888:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port="$port"
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
port=8888
echo "ssh -N -L 8888:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port="$port" --ServerApp.port_retries=0
""")
def _port_retries(ctx: Context) -> Iterator[Any]:
    for cmd, words in _jupyter_commands(ctx):
        settings = _jupyter_settings(words)
        retries = [value for _, trait, value in settings if trait in ("ServerApp.port_retries", "NotebookApp.port_retries")]
        if retries and retries[-1] != "0":
            yield cmd.line, f"port_retries={retries[-1]} lets Jupyter move to another port than the tunnel uses; set it to 0"
        elif not retries and any(trait in ("ServerApp.port", "NotebookApp.port") for _, trait, _ in settings):
            # the classic Notebook (before 7) reads no ServerApp settings; its NotebookApp ones reach the servers
            # built on jupyter_server too (passed on to ServerApp, with a warning)
            classic = any(w in ("notebook", "jupyter-notebook") or w.endswith("/jupyter-notebook") for w in words[:3])
            option = ("--NotebookApp.port_retries=0 (the classic Notebook before version 7 ignores "
                      "--ServerApp.port_retries; version 7 takes either)" if classic else "--ServerApp.port_retries=0")
            yield (cmd.line, f"without {option} Jupyter silently moves to another port when this one is taken, and the "
                             "tunnel points at the wrong port")


#: the remote end of an ssh tunnel: -L [ADDRESS:]PORT:HOST:HOSTPORT (HOSTPORT is the port on the compute node)
_TUNNEL_PART = r"(?:\$\([^)]*\)|[^\s:\"'])+"

_TUNNEL_FORWARD = re.compile(rf"\bssh\b.*?\s-L\s*(?:{_TUNNEL_PART}:)?{_TUNNEL_PART}:({_TUNNEL_PART}):([^\s\"']+)")

#: the addresses a server bound to them answers on the node itself only
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")

#: Jupyter's options that name a config file, which may set the server's address and port
_CONFIG_OPTIONS = frozenset({"--config", "--config-file", "--ServerApp.config_file", "--NotebookApp.config_file"})

#: what names the compute node in an ssh destination the job prints (the node's own name, as the job finds it)
_NAMES_THE_NODE = re.compile(r"hostname|HOSTNAME|SLURMD_NODENAME|SLURM_(?:JOB_)?NODELIST|SLURM_TOPOLOGY_ADDR")


@dataclasses.dataclass(frozen=True)
class Tunnel:
    """An ``ssh -L`` command the job prints for the user."""

    line: int
    raw: str          #: the forwarded port as written ($port)
    port: str         #: the same, the script's variables filled in
    host: str         #: the host the far end connects to (the node's name, localhost)
    destination: str  #: the host ssh logs in to, as written ("" when none is seen)
    via_login: bool   #: the destination is not the node itself, and no -J or ProxyJump reaches the node


def _tunnels(ctx: Context) -> list[Tunnel]:
    """The ssh tunnels the script prints, each line read as it is printed: a printf's %s filled in with its
    arguments (printf 'ssh -N -L %s:%s:%s login' "$port" "$node" "$port")."""
    out = []
    printed = {cmd.line: _printf_text(cmd) for cmd in _printf_commands(ctx)}
    for k, line in enumerate(ctx.parsed.lines, 1):
        if line.lstrip().startswith("#"):
            continue
        text = printed.get(k) or line
        for m in _TUNNEL_FORWARD.finditer(text):
            port = re.sub(r"\$\{(\w+)\}", r"$\1", m.group(2))
            rest = text[m.end():].split("\n", 1)[0]
            jumps = re.search(r"\s-J\s*\S|ProxyJump|ProxyCommand", text[:m.start()] + " " + rest) is not None
            destination = next((w.strip("\"'") for w in rest.split() if not w.startswith("-")
                                and re.search(r"[\w$]", w)), "")
            via_login = bool(destination) and not jumps and \
                not _NAMES_THE_NODE.search(ctx.parsed.resolve_written(destination, k))
            out.append(Tunnel(k, port, ctx.parsed.resolve(port, k), m.group(1), destination, via_login))
    return out


def _printf_commands(ctx: Context) -> list[Any]:
    return [c for c in _simple_commands(ctx.parsed.lexed.code) if not isinstance(c, _Inner)
            and c.words and str(c.words[0].value) == "printf" and "%" in c.text]


def _printf_text(cmd: Any) -> str:
    """What printf prints, as far as a reader can tell: its format with each %s (or %d) replaced by the next argument
    as written ($port); "" when the format has other conversions."""
    words = [w.raw for w in cmd.words[1:]]
    if words[:1] == ["-v"]:
        return ""
    if not words:
        return ""
    fmt, args = words[0].strip("'\""), [w.strip("\"'") for w in words[1:]]
    if re.search(r"%(?![sd%])", fmt):
        return ""
    it = iter(args)
    return re.sub(r"%[sd%]", lambda m: "%" if m.group() == "%%" else next(it, ""), fmt)


@rule("HPC608", "jupyter-tunnel-misses-the-server", "error",
      summary="the ssh tunnel the job prints forwards to another port (or address) than the Jupyter server listens on",
      why="The printed ssh -L LOCAL:NODE:PORT command is what the user runs on their laptop; when PORT is not the "
          "server's --port (a random $port in the tunnel, a fixed --port=8888 on the server, or no --port at all: "
          "Jupyter's default is 8888), the browser reaches nothing, or another user's server on that node. The same when "
          "the tunnel goes to the node's name while the server listens on localhost, its default without --ip: ssh "
          "reports 'connect failed: Connection refused'.",
      fix="Use one variable for both: port=$(shuf -i 8000-9999 -n 1), then ssh -N -L $port:$node:$port in the message "
          "and jupyter lab --port=\"$port\" --ServerApp.port_retries=0.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
port=$(shuf -i 8000-9999 -n 1)
echo "ssh -N -L $port:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
port=$(shuf -i 8000-9999 -n 1)
echo "ssh -N -L $port:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port="$port" --ServerApp.port_retries=0
""")
def _tunnel_port_differs(ctx: Context) -> Iterator[Any]:
    servers = _jupyter_commands(ctx)
    if not servers:
        return
    tunnels = _tunnels(ctx)
    if not tunnels:
        return
    if ctx.parsed.directives and all(t.host in _LOOPBACK and t.via_login for t in tunnels):
        t = tunnels[0]
        yield (t.line, f"the tunnel printed here forwards to {t.host}:{t.raw} as {t.destination} sees it, which is the "
                       "login node, not the compute node the server runs on: the browser reaches nothing (or another "
                       f"user's server on the login node); forward to the node instead (ssh -N -L {t.raw}:NODE:"
                       f"{t.raw} {t.destination}, with the server's --ip the node's name), or jump through the login "
                       f"node to it (ssh -N -J {t.destination} -L {t.raw}:localhost:{t.raw} NODE)")
        return
    for cmd, words in servers:
        settings = _jupyter_settings(words)
        if any(w.split("=", 1)[0] in _CONFIG_OPTIONS for w in words):
            continue  # a config file may set the address and the port, which the command line does not show
        ips = [value.strip("'\"") for _, trait, value in settings if trait in ("ServerApp.ip", "NotebookApp.ip")]
        if (not ips or ips[-1] in _LOOPBACK) and all(t.host not in _LOOPBACK for t in tunnels):
            line, host = tunnels[0].line, tunnels[0].host
            server = f"--ip={ips[-1]}" if ips else "no --ip (Jupyter's default is localhost)"
            yield (cmd.line, f"the tunnel printed on line {line} goes to {host} on the node's network, but the server "
                             f"listens on the node's loopback only ({server}): the connection is refused; start it "
                             "with --ip=\"$(hostname -s)\" (or tunnel to localhost through the node: ssh -J LOGIN -L "
                             "PORT:localhost:PORT NODE)")
            continue
        ports = [value for _, trait, value in settings if trait in ("ServerApp.port", "NotebookApp.port")]
        written = re.sub(r"\$\{(\w+)\}", r"$\1", ports[-1]) if ports else "8888"
        port = ctx.parsed.resolve(written, cmd.line)
        if any(t.port == port or t.raw == written for t in tunnels):
            continue
        line, raw = tunnels[0].line, tunnels[0].raw
        server = f"--port={written}" if ports else "no --port (Jupyter's default, 8888)"
        hint = f' (--port="{raw}")' if raw.startswith("$") else ""
        yield (cmd.line, f"the tunnel printed on line {line} forwards to port {raw} on the node, but the server listens "
                         f"on {server}: the browser reaches nothing there; use the same port in both{hint}")


#: the addresses that make a server listen on every address it has
_WILDCARD = ("0.0.0.0", "*", "::", "[::]", "")


@rule("HPC610", "jupyter-in-own-network", "error",
      summary="JupyterLab runs in an Apptainer container with a network of its own (--net), where the tunnel cannot "
              "reach it",
      why="apptainer exec --net (-n; singularity the same) runs the container in a network namespace of its own, and "
          "--network, --network-args and --netns-path set one up or join one. The node's address does not exist "
          "there: JupyterLab given --ip=<the node's name or address> cannot listen on it and stops at start-up, and "
          "one left on localhost (its default without --ip) listens on the container's own loopback, which no "
          "tunnel to the node reaches. The same for apptainer exec instance://NAME jupyter lab when the instance was "
          "started with them (apptainer instance start --net … IMAGE NAME): the exec joins the instance's network. "
          "Without these options the container shares the node's network, as a Jupyter "
          "job needs (the JupyterLab job of hpcwidgets refuses them). Not reported for --ip=0.0.0.0, which a port "
          "mapping of the container's network (--network-args portmap=…) can publish on the node.",
      fix="Remove --net (and --network, --network-args, --netns-path) from the apptainer command that runs JupyterLab, "
          "or from the instance start of the instance it runs in.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
apptainer exec --net --network none lab.sif jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 \\
  --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
apptainer exec lab.sif jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _jupyter_in_own_network(ctx: Context) -> Iterator[Any]:
    servers = _jupyter_commands(ctx)
    if not servers:
        return
    step_of = {id(s.command): s for s in steps(ctx)}
    for cmd, words in servers:
        step = step_of.get(id(cmd.outer if isinstance(cmd, _Inner) else cmd))
        c = step.chain.container if step is not None else None
        if getattr(c, "kind", "") != "apptainer.run":
            continue
        options = _own_network_words(c.extra if isinstance(c.extra, tuple) else ())
        runs = f"{c.binary} {c.action} {' '.join(options)} runs the container"
        # exec instance://NAME runs in the instance, whose network was set up when it started
        start = None if options else _instance_of(ctx, step, c)
        if start is not None:
            options = _own_network_words(tuple(str(w.value) for w in start.options))
            runs = (f"{c.binary} {c.action} instance://{start.name} runs JupyterLab in the instance started on line "
                    f"{start.line} with {' '.join(options)}, which runs")
        ips = [value for _, trait, value in _jupyter_settings(words) if trait in ("ServerApp.ip", "NotebookApp.ip")]
        ip = ctx.parsed.resolve(ips[-1], cmd.line).strip("'\"") if ips else "localhost"
        if not options or ip in _WILDCARD:
            continue
        if ip in _LOOPBACK:
            said = (f"JupyterLab listens on {'--ip=' + ips[-1] if ips else 'localhost (no --ip)'}, the container's own "
                    "loopback, which no tunnel to the node reaches")
        else:
            said = (f"the node's address that --ip={ips[-1]} names does not exist there, so JupyterLab cannot "
                    "listen on it and stops at start-up")
        them = "them" if len(options) > 1 else "it"
        where = " from that instance start" if start is not None else ""
        yield (cmd.line, f"{runs} in a network of its own: {said}; remove {' and '.join(options)}{where} (without "
                         f"{them} the container shares the node's network)")


def _own_network_words(extra: tuple[str, ...]) -> list[str]:
    """Apptainer's options among ``extra`` that give the container a network of its own, each with its value
    (--network none) where ``extra`` holds it (an instance start's options are the option words alone): what to
    remove."""
    out = []
    for i, word in enumerate(extra):
        if own_network_option((word,)):
            takes_value = "=" not in word and word not in ("-n", "--net") and i + 1 < len(extra) \
                and not extra[i + 1].startswith("-")
            out.append(f"{word} {extra[i + 1]}" if takes_value else word)
    return out


@rule("HPC605", "xdg-runtime-dir-unusable", "info",
      summary="XDG_RUNTIME_DIR points at a directory the job cannot use (a problem for Jupyter before 2019)",
      why="/run/user/UID exists only for a login session (not on compute nodes under Slurm). Jupyter with jupyter_core "
          "older than 4.5 (June 2019) kept its runtime files there and failed with 'Permission denied: /run/user/…'; "
          "newer versions ignore XDG_RUNTIME_DIR (they use JUPYTER_RUNTIME_DIR or their data folder), but other "
          "programs of the job may still try the folder.",
      fix="Point it at a private directory made by the job: export XDG_RUNTIME_DIR=$(mktemp -d).",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
export XDG_RUNTIME_DIR=/run/user/$(id -u)
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
XDG_RUNTIME_DIR=$(mktemp -d)
export XDG_RUNTIME_DIR
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _xdg(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        for name, w in cmd.assignments:
            if name == "XDG_RUNTIME_DIR" and w.raw.strip("'\"").startswith("/run/user"):
                yield cmd.line, ("XDG_RUNTIME_DIR=/run/user/… exists only for login sessions; Jupyter before jupyter_core "
                                 "4.5 (2019) fails there, and other programs may: use a directory the job makes (mktemp -d)")


@rule("HPC606", "jupyter-token-on-command-line", "error",
      summary="Jupyter's token or password is given on its command line",
      why="Every user of the node can read a running program's command line (ps -eo args, /proc/PID/cmdline): a token "
          "there lets anyone on a shared node use the server, and so your account, files and allocation.",
      fix="Pass the token through the environment, which only you can read: export JUPYTER_TOKEN (made when the job "
          "runs) before the server starts, and leave --ServerApp.token out; keep a password in a config file only you "
          "can read (jupyter server password).",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0 --ServerApp.token="$token"
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
JUPYTER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export JUPYTER_TOKEN
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _token_on_command_line(ctx: Context) -> Iterator[Any]:
    for cmd, words in _jupyter_commands(ctx):
        for key, trait, value in _jupyter_settings(words):
            if _SECRET_TRAIT.match(trait) and value not in ("", "''", '""'):
                what = "token" if trait.endswith(".token") else "password"
                yield (cmd.line, f"{key} puts the server's {what} on the command line, which ps shows to every user of "
                                 "the node; pass the token through JUPYTER_TOKEN instead (export it before the server "
                                 "starts)" + ("" if what == "token" else ", or keep the password in a config file only "
                                                                        "you can read"))
                break


#: what ``umask``/``chmod`` write when others may no longer read: an octal mode whose last digit has no read
#: bit (``077``, ``0600``), or symbolic clauses taking ``r`` from others (``go-rwx``, ``o-r``, ``a-r``, ``go=``)
_OCTAL_MODE = re.compile(r"^[0-7]{1,4}$")

_SYMBOLIC_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")


def _others_cannot_read(mode: str, *, umask: bool = False) -> bool:
    """True when ``mode`` (a chmod mode, or with ``umask`` a umask) leaves others without read access."""
    if _OCTAL_MODE.match(mode):
        last = int(mode[-1])
        return bool(last & 4) if umask else not last & 4
    if umask and mode.startswith("-S"):
        return False
    for clause in mode.split(","):
        m = _SYMBOLIC_CLAUSE.match(clause)
        if not m:
            continue
        who, op, perms = m.group(1) or "a", m.group(2), m.group(3)
        if ("o" in who or "a" in who) and ((op == "-" and "r" in perms) or (op == "=" and "r" not in perms)):
            return True
    return False


def _stderr_file(cmd: Any) -> str | None:
    """Where a command's standard error goes when a redirection sends it to a file: the file's name,
    ``"/dev/null"``, or None when it stays on the job's log."""
    stdout = stderr = None
    for r in cmd.redirects:
        target = str(r.target.value)
        if r.op in ("&>", "&>>", ">&") and r.fd is None and not target.isdigit():
            stdout = stderr = target
        elif r.op in (">", ">>", ">|") and r.fd in (None, 1):
            stdout = target
        elif r.op in (">", ">>", ">|") and r.fd == 2:
            stderr = target
        elif r.op == ">&" and r.fd == 2 and target == "1":
            stderr = stdout
    return stderr


#: the line HPC607's fix writes: the files Slurm opened for the job's output made private (when they are files:
#: run by hand, the script's output is a terminal); POSIX test, so that it works under #!/bin/sh too
_PRIVATE_LOG = ('for hpcw_fd in 1 2; do if [ -f "/proc/$$/fd/$hpcw_fd" ]; then chmod go-rwx "/proc/$$/fd/$hpcw_fd"; '
                "fi; done  # the log will hold Jupyter's token")


#: what a chmod names when it makes the job's log private: the batch shell's standard output or error (as
#: /proc/$$/fd/1, /proc/self/fd/2, /dev/stdout), or a log file by its name (slurm-$SLURM_JOB_ID.out, jlab.log)
_LOG_PATH = re.compile(r"^/proc/(?:\$\$|\$BASHPID|\$\{BASHPID\}|self)/fd/(?:[12]|\$\{?\w+\}?)$|^/dev/std(?:out|err)$"
                       r"|\.(?:out|log|err)$|SLURM_JOB_ID|%j")


@rule("HPC607", "jupyter-token-in-readable-log", "warning",
      summary="JupyterLab prints its token into a log that other users may read",
      why="Jupyter writes the URL with the token it made (…/lab?token=…) to its error output: in a batch job that is the "
          "job's log, which Slurm creates with the permissions of the shell you submitted from (umask 022: readable by "
          "everyone). Anyone who can open the folder it is in (a shared project or scratch folder) reads the token "
          "and can use the server as you. Jupyter prints no token it did not make, so a token passed in "
          "JUPYTER_TOKEN or a password set with jupyter server password never reaches the log.",
      fix="Make the log private before the server starts (chmod go-rwx \"/proc/$$/fd/1\" \"/proc/$$/fd/2\" changes the "
          "files Slurm opened for the job's output), or make the token in the job and export it as JUPYTER_TOKEN; "
          "a file the server's output is redirected to needs umask 077 first.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
#SBATCH --output=/project/lab/jupyter-%j.log
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
#SBATCH --output=/project/lab/jupyter-%j.log
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _token_in_readable_log(ctx: Context) -> Iterator[Any]:
    servers = _jupyter_commands(ctx)
    if not servers:
        return
    chmod_private = umask_private_from = log_file = None
    own_token = False
    token_names = {"JUPYTER_TOKEN"}   # the variables that hold the script's own token
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = [str(v) for v in cmd.argv]
        token_names.update(_copied_into_token(cmd))
        if any(name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE") or name.endswith("ENV_JUPYTER_TOKEN")
               for name, _ in cmd.assignments) or any(w in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE")
                                                      for w in words[1:2] if words[0] == "export"):
            own_token = True  # a token Jupyter did not make: it prints "?token=..." instead
        if words[:1] == ["chmod"] and any(_others_cannot_read(w) for w in words[1:]) \
                and any(_LOG_PATH.search(w.strip("\"'")) for w in words[2:]):
            chmod_private = chmod_private or cmd.line
        if words[:1] == ["umask"] and len(words) > 1 and umask_private_from is None \
                and _others_cannot_read(words[-1], umask=True):
            umask_private_from = cmd.line
        if words == ["exec"] and _stderr_file(cmd) not in (None, "/dev/null"):
            log_file = (_stderr_file(cmd), umask_private_from is not None)
    for _, words in servers:  # --ServerApp.token="$TOKEN": the script's own token, in its own variable
        given = {n for _, trait, value in _jupyter_settings(words) if _SECRET_TRAIT.match(trait)
                 and trait.endswith(".token") and not guessable_token(value)  # ($USER: no secret to print, HPC602)
                 for n, _ in expanded_refs(value) if n != "$$"}
        token_names |= given
        own_token = own_token or bool(given)
    if own_token:
        yield from _token_printed(ctx, chmod_private, token_names)
        return
    for cmd, words in servers:
        if any(_SECRET_TRAIT.match(trait) for _, trait, _ in _jupyter_settings(words)):
            continue  # its own token or password (HPC603/HPC606 say what is wrong with that)
        target = _stderr_file(cmd)
        if target is None and isinstance(cmd, _Inner):
            target = _stderr_file(cmd.outer)   # bash -c '…' > log 2>&1
        if target == "/dev/null":
            continue
        if target is None and log_file is not None:
            target, private = log_file
            if not private:
                yield (cmd.line, f"the server writes the URL with its token into {target} (the script's exec "
                                 "redirection), created readable by others: run umask 077 before that exec")
            continue
        if target is not None:
            if umask_private_from is None or umask_private_from > cmd.line:
                yield (cmd.line, f"the server writes the URL with its token into {target}, which is created "
                                 "readable by others (umask 022); run umask 077 first, or export JUPYTER_TOKEN")
            continue
        job = ctx.job
        to_stdout = any(r.op == ">&" and r.fd == 2 and str(r.target.value) == "1" for r in cmd.redirects)
        if str((job.output if to_stdout else job.error or job.output) or "") == "/dev/null":
            continue  # #SBATCH --output=/dev/null (or --error): the job's log is nowhere to read
        if chmod_private is None:
            if isinstance(cmd, _Inner):
                yield (cmd.line, "the server in this bash -c script prints the URL with its token into the job's "
                                 "log, which Slurm creates readable by others unless you submitted with umask 077; "
                                 'make it private first: chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"')
                return
            first = ctx.parsed.lines[cmd.line - 1]
            indent = first[:len(first) - len(first.lstrip())]
            fix = Fix("make the job's log private before the server starts", cmd.line, cmd.line,
                      text=f"{indent}{_PRIVATE_LOG}\n{first}")
            late = any(re.match(r"\s*umask\s+0*77\b", text) for text in ctx.parsed.lines[:cmd.line - 1])
            yield (cmd.line, "the server prints the URL with its token into the job's log, which Slurm creates "
                             "readable by others unless you submitted with umask 077" + (
                                 " (the umask in the script comes too late: Slurm opened the log before the script "
                                 "started)" if late else "") + "; make it private first: "
                             'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2" (or export a JUPYTER_TOKEN you make)', fix)
            return


def _copied_into_token(cmd: Any) -> set[str]:
    """The variables whose value ``cmd`` puts into JUPYTER_TOKEN (``JUPYTER_TOKEN="$tok"``, ``export
    JUPYTER_TOKEN=$tok``): they hold the token too."""
    values = [w.raw for name, w in cmd.assignments if name == "JUPYTER_TOKEN" or name.endswith("ENV_JUPYTER_TOKEN")]
    if cmd.argv and str(cmd.argv[0]) == "export":
        values += [w.raw for w in (cmd.cmd if isinstance(cmd, _Inner) else cmd).words[1:]
                   if w.raw.partition("=")[0] == "JUPYTER_TOKEN" and "=" in w.raw]
    return {n for raw in values for n, _ in expanded_refs(raw) if n != "$$"}


def _token_printed(ctx: Context, private_from: int | None, names: set[str]) -> Iterator[Any]:
    """HPC607 for a script that makes the token itself: the first echo or printf that writes it (one of ``names``,
    the variables that hold it) to the job's log before a chmod made the log private. Jupyter keeps such a token
    out of the log; the script's own message puts it there."""
    job = ctx.job
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or not cmd.words or str(cmd.words[0].value) not in ("echo", "printf"):
            continue
        if private_from is not None and private_from < cmd.line:
            return
        shown = next((n for w in cmd.words[1:] for n, _ in expanded_refs(w.raw) if n in names), None)
        if shown is None:
            continue
        out = [r for r in cmd.redirects if r.fd in (None, 1) and r.op in (">", ">>", ">|", ">&", "&>", "&>>")]
        if any(str(r.target.value) not in ("1", "2") for r in out):
            continue  # into a file of its own, not the log (its permissions are umask's)
        if str(job.output or "") == "/dev/null" and str(job.error or "/dev/null") == "/dev/null":
            return
        yield (cmd.line, f"this line prints the token (${shown}) into the job's log, which Slurm creates readable by "
                         "others unless you submitted with umask 077: anyone who can open its folder can use the "
                         'server as you; make the log private first: chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"')
        return


#: the kernel managers' classes whose ``transport`` setting reaches the server's kernels (by their name's ending, as
#: a subclass's setting is still the kernels' own: ServerKernelManager, AsyncIOLoopKernelManager …)
_TRANSPORT_CLASSES = ("KernelManager", "ConnectionFileMixin")


@rule("HPC611", "jupyter-kernels-over-tcp", "info",
      summary="a Jupyter server is told to run its kernels over TCP ports, which every user of the node can reach",
      why="With --KernelManager.transport=tcp (or --transport=tcp) each kernel listens on five ports of 127.0.0.1, which every user logged in to the node can connect to. The key in the kernel's "
          "connection file signs the messages (HMAC), so no one without it can make the kernel run code; it does not "
          "encrypt them: anyone on the node can subscribe to the kernel's output channel (iopub) and read the code "
          "and output of every cell, and can flood the ports. With transport ipc the kernels use Unix sockets in "
          "Jupyter's runtime folder, which a 0700 folder keeps to you. Some kernels cannot use them (Java and "
          "Kotlin kernels, some xeus kernels), so tcp may be a deliberate choice: this is a note of what it costs. "
          "A server that names no transport uses tcp as well (Jupyter's default) but is not reported: the rule "
          "speaks where the choice is written.",
      fix="Use --KernelManager.transport=ipc with JUPYTER_RUNTIME_DIR in a folder only you can open (the JupyterLab "
          "job of hpcwidgets does both; its kernel_transport field is tcp only when chosen); where a kernel needs "
          "tcp, prefer a node no one else uses (--exclusive).",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0 --KernelManager.transport=tcp
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
JUPYTER_RUNTIME_DIR=$(mktemp -d)
export JUPYTER_RUNTIME_DIR
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0 --KernelManager.transport=ipc
""")
def _kernels_over_tcp(ctx: Context) -> Iterator[Any]:
    for cmd, words in _jupyter_commands(ctx):
        chosen = ""
        for i, word in enumerate(words):  # the alias --transport, in both forms, which _jupyter_settings leaves out
            if word == "--transport" and i + 1 < len(words):
                chosen = words[i + 1]
            elif word.startswith("--transport="):
                chosen = word.partition("=")[2]
        for key, trait, value in _jupyter_settings(words):
            cls, _, name = trait.rpartition(".")
            if name == "transport" and cls.endswith(_TRANSPORT_CLASSES):
                chosen = value
        if chosen.strip("'\"").lower() == "tcp":
            yield (cmd.line, "the kernels listen on 127.0.0.1 ports that every user of the node can connect to: "
                             "their key stops others from running code in them, but not from reading every cell's "
                             "code and output on the output channel; use transport ipc unless a kernel needs tcp")
