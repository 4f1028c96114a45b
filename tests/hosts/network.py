"""Simulated hosts: one Linux network namespace per host, all cabled to a router namespace.

Every host ``NAME`` gets a veth pair, ``eth0`` on its side and a port on the router's, in a
/24 of its own (the host is ``.2``, the router ``.1`` and its default gateway). Nothing is
added to the machine's own namespace (no address, no route, no interface): the hosts reach
each other and nothing else, and parallel runs, whose namespace names carry a run id, do not
collide even though each uses the same addresses.

Faults are made where a network makes them:

* ``cut(host)`` / ``heal(host)``: the router's port of that host goes down (a pulled cable:
  packets vanish, nobody is told);
* ``block(src, dst, port)`` / ``unblock``: the router silently drops what ``src`` sends to
  ``dst:port`` (a policy-routing blackhole rule: a partition between two services only).

A process is put on a host either by argv (``ip netns exec``) or, for our own children,
by starting it while the calling thread is in the host's namespace (``inside(host)``): a
child inherits the network namespace of the thread that forks it, and so does a thread
started from there. Sockets keep the namespace they were created in.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NoNamespaces(RuntimeError):
    """This machine (or this user) cannot make network namespaces."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def why_no_namespaces() -> str | None:
    """None when namespaces can be made here; else why not (for a skip message)."""
    if not shutil.which("ip"):
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root (run `sudo make hosts`)"
    probe = f"ofprobe{secrets.token_hex(3)}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    index: int

    @property
    def address(self) -> str:
        return f"10.77.{self.index}.2"

    @property
    def gateway(self) -> str:
        return f"10.77.{self.index}.1"

    @property
    def port(self) -> str:
        """The router's interface cabled to this host."""
        return f"h{self.index}"


@dataclass
class Lab:
    """The router and the hosts of one test run; ``close()`` removes every trace."""

    #: The pid of the test process first: ``sweep_stale`` knows a dead run's namespaces by it.
    run_id: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(2)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    _blocks: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def router(self) -> str:
        return f"of{self.run_id}-router"

    def start(self) -> None:
        sweep_stale()
        self._add_namespace(self.router)
        self._exec(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def add_host(self, name: str) -> Host:
        host = Host(name, f"of{self.run_id}-{name}", len(self.hosts) + 1)
        self._add_namespace(host.namespace)
        self.hosts[name] = host
        _ip("link", "add", "eth0", "netns", host.namespace, "type", "veth",
            "peer", "name", host.port, "netns", self.router)  # fmt: skip
        _ip("-n", self.router, "addr", "add", f"{host.gateway}/24", "dev", host.port)
        _ip("-n", self.router, "link", "set", host.port, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        _ip("-n", host.namespace, "route", "add", "default", "via", host.gateway)
        return host

    def argv(self, host: str, *command: str) -> list[str]:
        """``command`` run on ``host``."""
        return ["ip", "netns", "exec", self.hosts[host].namespace, *command]

    @contextlib.contextmanager
    def inside(self, host: str) -> Iterator[None]:
        """The calling thread is on ``host`` for the block: what it connects to, binds,
        forks or starts as a thread meanwhile is there."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.hosts[host].namespace}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)
            os.close(target)

    # -- faults ----------------------------------------------------------------------------

    def cut(self, host: str) -> None:
        _ip("-n", self.router, "link", "set", self.hosts[host].port, "down")

    def heal(self, host: str) -> None:
        _ip("-n", self.router, "link", "set", self.hosts[host].port, "up")

    def block(self, source: str, target: str, port: int) -> None:
        """Drop, silently, every packet ``source`` sends to ``target`` on TCP ``port``."""
        rule = ("from", self.hosts[source].address, "to", self.hosts[target].address,
                "ipproto", "tcp", "dport", str(port), "blackhole")  # fmt: skip
        _ip("-n", self.router, "rule", "add", *rule)
        self._blocks.append(rule)

    def unblock(self) -> None:
        while self._blocks:
            _ip("-n", self.router, "rule", "del", *self._blocks.pop())

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Kill what still runs on the hosts (ours: the namespaces are this run's), then
        remove the namespaces; the veth pairs go with them."""
        namespaces = [host.namespace for host in self.hosts.values()] + [self.router]
        for namespace in namespaces:
            for pid in _pids(namespace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_pids(ns) for ns in namespaces) and time.monotonic() < deadline:
            time.sleep(0.1)
        for namespace in namespaces:
            _ip("netns", "del", namespace, check=False)
        self.hosts.clear()

    def _add_namespace(self, namespace: str) -> None:
        done = _ip("netns", "add", namespace, check=False)
        if done.returncode != 0:
            raise NoNamespaces(f"ip netns add {namespace}: {done.stderr.strip()}")
        _ip("-n", namespace, "link", "set", "lo", "up")

    def _exec(self, namespace: str, *command: str) -> None:
        subprocess.run(["ip", "netns", "exec", namespace, *command], check=True)


_OURS = re.compile(r"^of(\d+)-[0-9a-f]+-")


def sweep_stale() -> None:
    """Remove the namespaces of runs whose test process is gone (killed before teardown)."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for namespace in (line.split()[0] for line in listed if line.strip()):
        found = _OURS.match(namespace)
        if found is None or Path(f"/proc/{found.group(1)}").exists():
            continue
        for pid in _pids(namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", namespace, check=False)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _pids(namespace: str) -> list[int]:
    done = _ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in done.stdout.split()] if done.returncode == 0 else []
