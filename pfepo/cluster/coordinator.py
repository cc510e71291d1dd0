"""The coordination interface the daemon uses; etcd.EtcdCoordinator is the implementation.

Kept small so the daemon and tests depend on what coordination means (members, switch ownership with a
generation, policy revisions, claims), not on etcd's API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pfepo.cluster.claims import Claim
from pfepo.cluster.ownership import Member


@dataclass(frozen=True)
class Ownership:
    """Who is MASTER of a switch, and the generation id to send in OFPT_ROLE_REQUEST.

    The generation is the etcd revision at which the owner took the switch: it only grows, so a switch
    refuses a controller still acting on an older ownership (OFPRRFC_STALE)."""

    switch: str
    owner: str
    generation: int


@dataclass(frozen=True)
class PolicyRevision:
    revision: int  # etcd mod revision of the policy document
    files: dict[str, str]  # file name -> YAML text, as validated by ``pfepo policy apply``


class Coordinator(Protocol):
    member_id: str

    def join(self) -> None: ...
    def leave(self) -> None: ...
    def members(self) -> list[Member]: ...
    def owners(self) -> dict[str, Ownership]: ...
    def rebalance(self, switch_regions: Mapping[str, str | None]) -> dict[str, Ownership]: ...
    def put_policy(self, files: Mapping[str, str]) -> int: ...
    def policy(self) -> PolicyRevision | None: ...
    def claims(self) -> list[Claim]: ...
    def claim(self, new: Claim, capacity_mbps: Mapping[str, float]) -> str | None: ...
    def watch(self, what: str, callback: Callable[[], None]) -> Callable[[], None]: ...
