"""The impairment state file: where a running topology put its link nodes and hosts.

The topology process writes it once its nodes exist; ``pfepo impair`` and :class:`Impairer` read it to
find the namespace (by PID, or by ``ip netns`` name) and the interfaces to act on. Format (JSON)::

    {
      "version": 1,
      "links": {
        "eu": {"pid": 1234, "a": "d-eu-eth0", "b": "d-eu-eth1",
               "control": "/tmp/pfepo-topo/eu.ctl", "region": "eu", "relay_pid": 1240}
      },
      "hosts": {
        "h1": {"pid": 1111, "intfs": ["h1-eth0"], "region": null},
        "eu-1": {"pid": 1112, "intfs": ["eu-1-eth0"], "region": "eu",
                 "http_control": "/tmp/pfepo-topo/eu-1.mode", "service_ports": [80, 8080]}
      }
    }

Each node has exactly one of ``pid`` (a process inside the namespace, e.g. a Mininet host's shell) or
``netns`` (a name under /run/netns). ``a``/``b`` are the link node's interfaces toward the core and
toward the region; ``control`` is the relay's UNIX socket. ``region`` lets a region name stand for its
link(s). ``relay_pid`` is informational (who to stop at teardown). A server host may name its HTTP
service's ``http_control`` file and ``service_ports`` (gray failures: hang, brown-out, crash).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


class StateError(ValueError):
    """The state file is missing, unreadable or does not describe nodes the way we need."""


@dataclass
class NodeRef:
    """How to enter a node's network namespace: a PID inside it or a named netns."""

    pid: int | None = None
    netns: str | None = None

    def describe(self) -> str:
        return f"pid {self.pid}" if self.pid is not None else f"netns {self.netns}"


@dataclass
class LinkNode(NodeRef):
    """A link node running the relay between interface ``a`` (core side) and ``b`` (region side)."""

    a: str = ""
    b: str = ""
    control: str = ""
    region: str | None = None
    relay_pid: int | None = None


@dataclass
class HostNode(NodeRef):
    intfs: list[str] = field(default_factory=list)
    region: str | None = None
    # A server host: the control file its HTTP service re-reads (hang / brown-out) and the TCP ports it
    # serves (a crash rejects them with resets). None/empty for hosts that serve nothing.
    http_control: str | None = None
    service_ports: list[int] = field(default_factory=list)


@dataclass
class ImpairState:
    links: dict[str, LinkNode] = field(default_factory=dict)
    hosts: dict[str, HostNode] = field(default_factory=dict)
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "links": {k: asdict(v) for k, v in self.links.items()},
            "hosts": {k: asdict(v) for k, v in self.hosts.items()},
        }

    @classmethod
    def from_dict(cls, doc: Any, source: str = "state") -> ImpairState:
        if not isinstance(doc, dict):
            raise StateError(f"{source}: top level must be a JSON object")
        unknown = set(doc) - {"version", "links", "hosts"}
        if unknown:
            raise StateError(f"{source}: unknown key(s) {sorted(unknown)}")
        version = doc.get("version", VERSION)
        if version != VERSION:
            raise StateError(f"{source}: version {version!r} not supported (expected {VERSION})")
        links = {k: _node(LinkNode, v, f"{source}: links.{k}") for k, v in _mapping(doc, "links", source).items()}
        hosts = {k: _node(HostNode, v, f"{source}: hosts.{k}") for k, v in _mapping(doc, "hosts", source).items()}
        for name, link in links.items():
            for key in ("a", "b", "control"):
                if not getattr(link, key):
                    raise StateError(f"{source}: links.{name}.{key} is required")
        clash = set(links) & set(hosts)
        if clash:
            raise StateError(f"{source}: names used both as link and host: {sorted(clash)}")
        return cls(links=links, hosts=hosts, version=version)


def _mapping(doc: dict, key: str, source: str) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise StateError(f"{source}: {key} must be an object keyed by node name")
    return value


def _node(kind: type, value: Any, where: str):
    if not isinstance(value, dict):
        raise StateError(f"{where} must be an object")
    fields = set(kind.__dataclass_fields__)
    unknown = set(value) - fields
    if unknown:
        raise StateError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(fields)}")
    try:
        node = kind(**value)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise StateError(f"{where}: {exc}") from exc
    if (node.pid is None) == (node.netns is None):
        raise StateError(f"{where}: give exactly one of pid or netns")
    if node.pid is not None and (not isinstance(node.pid, int) or isinstance(node.pid, bool) or node.pid <= 0):
        raise StateError(f"{where}.pid must be a positive integer")
    if node.netns is not None and (not isinstance(node.netns, str) or not node.netns or "/" in node.netns):
        raise StateError(f"{where}.netns must be a netns name")
    if isinstance(node, HostNode) and not (
        isinstance(node.intfs, list) and all(isinstance(i, str) and i for i in node.intfs)
    ):
        raise StateError(f"{where}.intfs must be a list of interface names")
    for key in ("a", "b", "control"):
        if key in value and not isinstance(value[key], str):
            raise StateError(f"{where}.{key} must be a string")
    return node


def load_state(path: str | os.PathLike) -> ImpairState:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise StateError(f"{path}: cannot read state file: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{path}: not valid JSON: {exc}") from exc
    return ImpairState.from_dict(doc, str(path))


def save_state(state: ImpairState, path: str | os.PathLike) -> None:
    """Atomic write (temp file + rename) so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
