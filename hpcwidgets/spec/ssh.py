"""How the tunnel reaches the cluster: the login host, user and jump host as ``ssh`` takes them.

A cluster profile and the Jupyter job name the same login node; both check its spelling here, so a
value that would not work in the printed ``ssh -N -L …`` line is refused with one message whichever
way it was given. Stdlib only.
"""

from __future__ import annotations

import re

#: a host name or address ssh can be given (no user@, no :port, no blanks)
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
#: a user name on the cluster
USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
#: one hop of ``ssh -J``: ``[user@]host[:port]``
_JUMP_HOP = re.compile(rf"(?:{USER.pattern}@)?{HOST.pattern}(?::(\d+))?")


def login_host_problem(value: str, *, in_profile: bool = False) -> str:
    """Why ``value`` is not a bare login host name, naming where what it holds goes (as a profile key with
    ``in_profile``, else as the job's field and option), or ""."""
    host, colon, port = value.rpartition(":")
    if colon and port.isdigit() and HOST.fullmatch(host):
        if in_profile:
            return f"{value!r}: write the ssh port as login_port = {port} and only the host here (login_host = {host!r})"
        return f"{value!r}: put the ssh port in login_port (--login-port {port}) and only the host here"
    if HOST.fullmatch(value):
        return ""
    if in_profile:
        return f"{value!r} is not a host name; write only the host, e.g. login.example.edu (no user@ or spaces)"
    if "@" in value:
        return f"{value!r}: put the user name in login_user and only the host here"
    return f"{value!r} is not a host name (letters, digits, '.', '-')"


def jump_host_problem(value: str) -> str:
    """Why ``value`` is not a jump host as ``ssh -J`` takes it (``[user@]host[:port]``, hops joined by
    commas), or "". The value lands in the printed tunnel command, so nothing else gets through."""
    hops = value.split(",")
    matches = [_JUMP_HOP.fullmatch(h) for h in hops]
    if not all(matches):
        return (f"{value!r} is not a jump host: write [user@]host[:port] as ssh -J takes it, e.g. gateway.example.org "
                "or alice@gw.example.org:2222 (several hops joined by commas, no spaces)")
    for hop, m in zip(hops, matches):
        port = m.group(1) if m else None
        if port is not None and not 0 < int(port) < 65536:
            return f"{value!r}: port {port} of jump host {hop!r} is not a port number; write one from 1 to 65535"
    return ""
