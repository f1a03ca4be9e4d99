"""Network checks for JupyterLab on a compute node: an address the login node reaches, a free port on it,
and whether JupyterLab answers there.

Python 3 standard library only, and complete on its own: the Jupyter job script writes this file into its
private folder and runs it with the node's python3 (``python3 net.py address NODE``, ``port ADDR LOW HIGH``,
``free ADDR PORT``, ``answers ADDR PORT FOLDER``), which need not have hpcwidgets; ``make lab`` inside a
job imports it.
"""

import errno, glob, ipaddress, json, os, random, socket, subprocess, sys


def reachable(addr):
    ip = ipaddress.ip_address(addr.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def address(node):
    """An address of this node that the login node can reach (the node's name may mean 127.0.1.1 here)."""
    found = []
    try:
        named = [info[4][0] for info in socket.getaddrinfo(node, None, type=socket.SOCK_STREAM)]
        found += sorted(named, key=lambda a: ":" in a)  # IPv4 first
    except OSError:
        pass
    try:  # the address of the default route (connecting a UDP socket sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("203.0.113.1", 9))
            found.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        found += subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    except OSError:
        pass
    good = [a for a in found if reachable(a)]
    return good[0] if good else "0.0.0.0"


def free(addr, port):
    """Can a server listen on addr:port? (the same test JupyterLab makes when it starts). Raises OSError
    when nothing can listen on addr at all."""
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((addr, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def answers(addr, port, folder):
    """JupyterLab wrote its server file for this port (so it is ours) and accepts connections there."""
    ours = False
    for path in glob.glob(os.path.join(folder, "*server-*.json")):
        try:
            with open(path) as fh:
                ours = ours or json.load(fh).get("port") == port
        except (OSError, ValueError):
            pass
    if not ours:
        return False
    try:
        socket.create_connection(("127.0.0.1" if addr == "0.0.0.0" else addr, port), timeout=5).close()
    except OSError:
        return False
    return True


def main(argv):
    try:
        command(argv)
    except OSError as exc:
        sys.exit("error: cannot listen on %s: %s" % (argv[2], exc.strerror or exc))


def command(argv):
    what = argv[1]
    if what == "address":
        print(address(argv[2]))
    elif what == "port":
        addr, low, high = argv[2], int(argv[3]), int(argv[4])
        ports = list(range(low, high + 1))
        random.shuffle(ports)
        port = next((p for p in ports if free(addr, p)), None)
        if port is None:
            sys.exit("error: no free port between %d and %d on %s: all are in use; choose another range "
                     "(port_min, port_max)" % (low, high, addr))
        print(port)
    elif what == "free":
        sys.exit(0 if free(argv[2], int(argv[3])) else 1)
    elif what == "answers":
        sys.exit(0 if answers(argv[2], int(argv[3]), argv[4]) else 1)


if __name__ == "__main__":
    main(sys.argv)
