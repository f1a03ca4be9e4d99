"""How the tunnel reaches the cluster: the login host, user and jump host as ``ssh`` takes them.

A cluster profile and the Jupyter job name the same login node; both check its spelling here, so a
value that would not work in the printed ``ssh -N -L …`` line is refused with one message whichever
way it was given. What ssh accepts, as OpenSSH reads it: after ``user@`` a host name (a fully qualified
one may end in a dot), an IPv4 address or a bare IPv6 address (``alice@2001:db8::1``: brackets would
become part of the name); in ``-J`` each hop is ``[user@]host[:port]``, where an IPv6 address needs
brackets (``[2001:db8::5]:2222``) because its colons would otherwise be read as a port. Stdlib only.
"""

from __future__ import annotations

import ipaddress
import re

from .units import is_number

#: a host name or IPv4 address ssh can be given (no user@, no :port, no blanks); a trailing dot marks a fully
#: qualified name
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?")
#: a user name on the cluster
USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
#: an IPv6 address as written, without a zone (%eth0 names an interface of the laptop, and may hold anything)
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f:.]+")
#: one hop of ``ssh -J``: ``[user@]host[:port]``, the host a name, an IPv4 address or ``[IPv6]``
_JUMP_HOP = re.compile(rf"(?:{USER.pattern}@)?(?:{HOST.pattern}|\[([0-9A-Fa-f:.]+)\])(?::(\d+))?")


def _is_ipv6(text: str) -> bool:
    """Whether ``text`` is an IPv6 address without brackets or zone (``2001:db8::1``)."""
    if not _IPV6_TEXT.fullmatch(text) or ":" not in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def login_host_problem(value: str, *, in_profile: bool = False) -> str:
    """Why ``value`` is not a bare login host name or address, naming where what it holds goes (as a profile key
    with ``in_profile``, else as the job's field and option), or ""."""
    if HOST.fullmatch(value) or _is_ipv6(value):
        return ""
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::(\d+))?", value)
    if bracketed and _is_ipv6(bracketed.group(1)):
        address, port = bracketed.groups()
        if port is None:
            return f"{value!r}: write the address without brackets ({address}): ssh takes a bare address after user@"
        where = f"login_port = {port}" if in_profile else f"login_port (--login-port {port})"
        return f"{value!r}: put the ssh port in {where} and only the address here, without brackets ({address})"
    host, colon, port = value.rpartition(":")
    if colon and is_number(port) and HOST.fullmatch(host):
        if in_profile:
            return f"{value!r}: write the ssh port as login_port = {port} and only the host here (login_host = {host!r})"
        return f"{value!r}: put the ssh port in login_port (--login-port {port}) and only the host here"
    if in_profile:
        return f"{value!r} is not a host name; write only the host, e.g. login.example.edu (no user@ or spaces)"
    if "@" in value:
        return f"{value!r}: put the user name in login_user and only the host here"
    return f"{value!r} is not a host name (letters, digits, '.', '-') or an IP address"


def jump_host_problem(value: str) -> str:
    """Why ``value`` is not a jump host as ``ssh -J`` takes it (``[user@]host[:port]``, hops joined by
    commas), or "". The value lands in the printed tunnel command, so nothing else gets through."""
    hops = value.split(",")
    for hop in hops:
        address = hop.rpartition("@")[2]
        if _is_ipv6(address):
            return (f"{value!r}: write the IPv6 address of jump host {hop!r} in brackets, [{address}] (with a port: "
                    f"[{address}]:2222): ssh -J reads a bare address's colons as a port")
    matches = [_JUMP_HOP.fullmatch(h) for h in hops]
    if not all(matches):
        return (f"{value!r} is not a jump host: write [user@]host[:port] as ssh -J takes it, e.g. gateway.example.org "
                "or alice@gw.example.org:2222 (several hops joined by commas, no spaces)")
    for hop, m in zip(hops, matches):
        address, port = m.groups() if m else (None, None)
        if address is not None and not _is_ipv6(address):
            return f"{value!r}: {address!r} in jump host {hop!r} is not an IPv6 address"
        if port is not None and not 0 < int(port) < 65536:
            return f"{value!r}: port {port} of jump host {hop!r} is not a port number; write one from 1 to 65535"
    return ""
