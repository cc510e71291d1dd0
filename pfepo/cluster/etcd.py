"""The Coordinator on etcd v3 through its HTTP gateway (etcd3gw). The only module that talks to etcd.

Keys, all under ``/pfepo/CLUSTER/``:
  members/ID                  {"id", "region"}          on this controller's lease
  owners/SWITCH               controller id             on the owner's lease; mod revision = generation
  policy                      {"files": {name: yaml}}   no lease; mod revision = policy revision
  claims/SERVICE/SRC/DST/ID   Claim as JSON             on the claimer's (ID's) lease
  baseline                    {"services": {name: {"weights", "source"}}}   no lease; mod revision = its revision
Leases make a dead controller's membership, switches and claims disappear after ``lease_ttl_s``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlparse

import etcd3gw
from etcd3gw import exceptions as etcd_exc
from etcd3gw.lease import Lease

from pfepo.cluster.claims import Claim, refusal
from pfepo.cluster.coordinator import Ownership, PolicyRevision
from pfepo.cluster.ownership import Member, desired_owners

log = logging.getLogger("pfepo.cluster")

EtcdError = etcd_exc.Etcd3Exception
T = TypeVar("T")


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _unb64(s: str) -> str:
    return base64.b64decode(s).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range end for "every key starting with ``prefix``" (last byte + 1)."""
    b = prefix.encode()
    return _b64(b[:-1] + bytes([b[-1] + 1]))


def _members(kvs: list[tuple[str, str, dict]]) -> list[Member]:
    out = []
    for _, value, _ in kvs:
        doc = json.loads(value)
        out.append(Member(doc["id"], doc.get("region")))
    return out


def _owners(prefix: str, kvs: list[tuple[str, str, dict]]) -> dict[str, Ownership]:
    return {k[len(prefix):]: Ownership(k[len(prefix):], v, int(kv["mod_revision"])) for k, v, kv in kvs}


KEEPALIVE_RETRY_S = 0.2  # a failed lease renewal is retried this soon (the lease has >= 2/3 TTL left)

# Errors where another etcd member may answer: connection refused/reset, timeout, 503 (no leader/quorum here).
_FAILOVER = (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError)


class EtcdCoordinator:
    """``endpoint``: one etcd client URL or several (members of one etcd cluster): every request goes to the
    current one and, on a connection error, timeout or 503, to the next ones in turn (the first that answers
    becomes current); only when none answers does the caller see the error."""

    def __init__(self, endpoint: str | Sequence[str], cluster: str, member_id: str, region: str | None = None,
                 ttl_s: int = 5, timeout_s: float = 2.0):
        self.endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
        if not self.endpoints:
            raise ValueError("at least one etcd endpoint")
        self._clients = []
        for e in self.endpoints:
            u = urlparse(e)
            self._clients.append(etcd3gw.client(host=u.hostname or "127.0.0.1", port=u.port or 2379,
                                                protocol=u.scheme or "http", timeout=timeout_s))
        self._current = 0
        self.failovers = 0  # times a request moved on to another endpoint
        self.root = f"/pfepo/{cluster}/"
        self.member_id = member_id
        self.region = region
        self.ttl_s = ttl_s
        self._lease = None
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self.lease_lost = 0  # times the lease expired under us and we re-joined

    # --- raw gateway calls ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The endpoint requests go to now."""
        return self.endpoints[self._current]

    def _call(self, fn: Callable[[etcd3gw.Etcd3Client], T]) -> T:
        """``fn(client)`` on the current endpoint, then on each other one in turn while it cannot be reached.

        A request that timed out may have been applied: everything we write is idempotent or guarded by a
        compare (owners, claims, documents), so trying it on another member is safe; a lease created twice
        leaves one unused lease that expires after the TTL."""
        n = len(self._clients)
        start = self._current
        for i in range(n):
            k = (start + i) % n
            try:
                out = fn(self._clients[k])
            except _FAILOVER as exc:
                if i == n - 1:
                    raise
                log.warning("etcd endpoint %s unreachable (%s): trying %s", self.endpoints[k],
                            str(exc)[:200], self.endpoints[(k + 1) % n])
                continue
            if k != self._current:
                self._current = k
                self.failovers += 1
            return out
        raise AssertionError("unreachable")

    def _post(self, path: str, body: dict) -> dict:
        return self._call(lambda c: c.post(c.get_url(path), data=json.dumps(body)))

    def _range(self, prefix: str) -> tuple[int, list[tuple[str, str, dict]]]:
        """(store revision, [(key, value, kv metadata)]) of every key under ``prefix``."""
        res = self._post("/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        kvs = [(_unb64(kv["key"]), _unb64(kv.get("value", "")), kv) for kv in res.get("kvs", [])]
        return int(res["header"]["revision"]), kvs

    def _txn(self, compare: list[dict], success: list[dict]) -> bool:
        return self._txn_rev(compare, success) is not None

    def _txn_rev(self, compare: list[dict], success: list[dict]) -> int | None:
        """The store revision after the transaction when its compares held, else None."""
        res = self._post("/kv/txn", {"compare": compare, "success": success, "failure": []})
        return int(res["header"]["revision"]) if res.get("succeeded", False) else None

    # --- membership ----------------------------------------------------------------------------------
    def join(self) -> None:
        """Register this controller on a fresh lease and keep the lease alive from a thread."""
        self._register()
        if self._keeper is None:
            self._stop.clear()
            self._keeper = threading.Thread(target=self._keep_alive, name="cluster-lease", daemon=True)
            self._keeper.start()

    def _register(self) -> None:
        self._lease = self._call(lambda c: c.lease(self.ttl_s))
        self._call(lambda c: c.put(self.root + "members/" + self.member_id,
                                   json.dumps({"id": self.member_id, "region": self.region}), lease=self._lease))

    def _keep_alive(self) -> None:
        """Renew every TTL/3 on a fixed (monotonic) schedule, so a live controller's lease always has at
        least 2/3 TTL left; a renewal that failed is retried after ``KEEPALIVE_RETRY_S``, not a period later
        (a broken pooled connection would otherwise cost a third of the TTL)."""
        period = self.ttl_s / 3
        due = time.monotonic() + period
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            try:
                lease_id = self._lease.id
                if self._call(lambda c, i=lease_id: Lease(i, c).refresh()) <= 0:  # expired while away: start over
                    self.lease_lost += 1
                    log.warning("cluster lease expired: re-joining as %s", self.member_id)
                    self._register()
                due += period
                if due < time.monotonic():  # stalled past a whole period: next one from now
                    due = time.monotonic() + period
            except EtcdError as exc:
                log.warning("cluster lease keep-alive failed (retrying in %.1f s): %s", KEEPALIVE_RETRY_S, exc)
                due = time.monotonic() + KEEPALIVE_RETRY_S

    def leave(self) -> None:
        """Stop the keep-alive and revoke the lease: our membership, switches and claims go at once."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(self.ttl_s)
            self._keeper = None
        if self._lease is not None:
            try:
                lease_id = self._lease.id
                self._call(lambda c: Lease(lease_id, c).revoke())
            except EtcdError as exc:
                log.warning("cluster lease revoke failed: %s", exc)
            self._lease = None

    def members(self) -> list[Member]:
        _, kvs = self._range(self.root + "members/")
        return _members(kvs)

    def member_ids(self) -> frozenset[str]:
        """The live controllers' ids only (keys, no values): the agent's cheap poll for a lease that ended.
        A lease's member key and owner keys are deleted in one revision, so this changes exactly when a
        departed controller's switches become free."""
        pre = self.root + "members/"
        res = self._post("/kv/range", {"key": _b64(pre), "range_end": _prefix_end(pre), "keys_only": True})
        return frozenset(_unb64(kv["key"])[len(pre):] for kv in res.get("kvs", []))

    def _snapshot(self) -> tuple[list[Member], dict[str, Ownership]]:
        """Members and owners read in one request at one revision (a txn of two ranges)."""
        m, o = self.root + "members/", self.root + "owners/"
        res = self._post("/kv/txn", {"compare": [], "success": [
            {"request_range": {"key": _b64(p), "range_end": _prefix_end(p)}} for p in (m, o)], "failure": []})
        ranges = [[(_unb64(kv["key"]), _unb64(kv.get("value", "")), kv) for kv in r["response_range"].get("kvs", [])]
                  for r in res.get("responses", [])]
        return _members(ranges[0]), _owners(o, ranges[1])

    # --- switch ownership ----------------------------------------------------------------------------
    def owners(self) -> dict[str, Ownership]:
        pre = self.root + "owners/"
        _, kvs = self._range(pre)
        return _owners(pre, kvs)

    def rebalance(self, switch_regions: Mapping[str, str | None]) -> dict[str, Ownership]:
        """One step toward the desired owners: take free switches we should own, release those a live
        preferred peer should own (it takes them on its own step). Returns the owners afterwards.

        One read (members and owners at one revision) and one transaction per switch that changes hands;
        a switch is taken only while its key is absent (the old owner's lease is gone), at the revision of
        that transaction: the generation only grows, so the old master is refused by the switch."""
        members, current = self._snapshot()
        want = desired_owners(switch_regions, members)
        me = self.member_id
        lease = self._lease
        if lease is None:  # left (stopping): take nothing
            return current
        after, raced = dict(current), False
        for sw, owner in want.items():
            key = _b64(self.root + "owners/" + sw)
            cur = current.get(sw)
            if owner == me and cur is None:
                rev = self._txn_rev([{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
                                    [{"request_put": {"key": key, "value": _b64(me), "lease": lease.id}}])
                if rev is None:
                    raced = True
                else:  # our put is the transaction's only write: its revision is the key's mod revision
                    after[sw] = Ownership(sw, me, rev)
            elif cur is not None and cur.owner == me and owner not in (None, me):
                if self._txn_rev([{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": cur.generation}],
                                 [{"request_delete_range": {"key": key}}]) is None:
                    raced = True
                else:
                    after.pop(sw)
        return self.owners() if raced else after

    # --- policy --------------------------------------------------------------------------------------
    def put_policy(self, files: Mapping[str, str]) -> int:
        """Store validated policy files as one document; returns its revision."""
        res = self._post("/kv/put", {"key": _b64(self.root + "policy"),
                                     "value": _b64(json.dumps({"files": dict(files)}, sort_keys=True))})
        return int(res["header"]["revision"])

    def policy(self) -> PolicyRevision | None:
        got = self._call(lambda c: c.get(self.root + "policy", metadata=True))
        if not got:
            return None
        value, meta = got[0]
        return PolicyRevision(int(meta["mod_revision"]), json.loads(value)["files"])

    # --- small shared documents (the operator's baseline weights) ------------------------------------
    def get_doc(self, name: str) -> tuple[int, dict] | None:
        """(mod revision, JSON document) stored under ``name`` (None: none yet)."""
        got = self._call(lambda c: c.get(self.root + name, metadata=True))
        if not got:
            return None
        value, meta = got[0]
        return int(meta["mod_revision"]), json.loads(value)

    def put_doc(self, name: str, doc: dict, expect_revision: int) -> int | None:
        """Store ``doc`` if the key's mod revision is still ``expect_revision`` (0: absent); returns the new
        revision, or None when someone else wrote it first (read it and adopt theirs)."""
        key = _b64(self.root + name)
        res = self._post("/kv/txn", {
            "compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": expect_revision}],
            "success": [{"request_put": {"key": key, "value": _b64(json.dumps(doc, sort_keys=True))}}],
            "failure": []})
        return int(res["header"]["revision"]) if res.get("succeeded") else None

    # --- loop-free claims ----------------------------------------------------------------------------
    def claims(self) -> list[Claim]:
        return self._claims()[1]

    def _claims(self) -> tuple[int, list[Claim]]:
        rev, kvs = self._range(self.root + "claims/")
        return rev, [Claim(**json.loads(v)) for _, v, _ in kvs]

    def claim(self, new: Claim, capacity_mbps: Mapping[str, float], attempts: int = 5) -> str | None:
        """Make ``new`` atomically: read every claim, apply the pure rule, and write only if no claim was
        added or changed since the read (a compare over the whole claims range). Returns None when made,
        else why not. Removed claims (expired leases) only free capacity and break paths, so they cannot
        make an accepted claim wrong."""
        pre = self.root + "claims/"
        new = Claim(new.service, new.src, new.dst, new.mbps, self.member_id)
        key = _b64(f"{pre}{new.service}/{new.src}/{new.dst}/{self.member_id}")
        for _ in range(attempts):
            rev, current = self._claims()
            why = refusal(current, new, capacity_mbps)
            if why is not None:
                return why
            value = _b64(json.dumps(new.__dict__, sort_keys=True))
            if self._txn([{"key": _b64(pre), "range_end": _prefix_end(pre), "target": "MOD", "result": "LESS",
                           "mod_revision": rev + 1}],
                         [{"request_put": {"key": key, "value": value, "lease": self._lease.id}}]):
                return None
        return f"{new.service}: claims kept changing under {attempts} attempts; try again"

    def release(self, service: str, src: str, dst: str) -> None:
        """Drop our claim for this edge (the shift is over)."""
        self._call(lambda c: c.delete(f"{self.root}claims/{service}/{src}/{dst}/{self.member_id}"))

    # --- watching ------------------------------------------------------------------------------------
    def watch(self, what: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` (from a watch thread) after any change under ``what`` ("members",
        "owners", "policy" or "claims"). Returns the function that cancels the watch."""
        events, cancel = self._call(lambda c: c.watch_prefix(self.root + what))  # on the endpoint in use

        def run() -> None:
            for _ in events:
                try:
                    callback()
                except Exception:  # a failing callback must not end the watch
                    log.exception("cluster watch callback for %s failed", what)

        threading.Thread(target=run, name=f"cluster-watch-{what}", daemon=True).start()
        return cancel
