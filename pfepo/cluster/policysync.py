"""One consistent policy: validated YAML files in etcd (with revisions), mirrored to each controller.

``apply`` validates with the same loader as ``pfepo validate`` and stores only a valid set, so etcd always
holds the last good revision. ``PolicyMirror`` writes the stored files into a local folder and asks the
daemon's PolicyReloader to reload at once: every controller runs the same validated files, and a
revision its own config rejects leaves its last good set in force (the reloader's usual rule).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pfepo.cluster.coordinator import Coordinator
from pfepo.policy.loader import expand_paths, load_policies

log = logging.getLogger("pfepo.cluster")


def policy_files(paths: Sequence[str | Path]) -> dict[str, str]:
    """name -> text of the files ``paths`` expand to; names keep the load order (NNN-basename)."""
    files, _ = expand_paths(paths)
    return {f"{i:03d}-{Path(f).name}": Path(f).read_text(encoding="utf-8") for i, f in enumerate(files)}


def apply(coord: Coordinator, paths: Sequence[str | Path], config=None) -> int:
    """Validate ``paths`` (raises yamlconf.ConfigError listing every problem) and store them; returns the
    new revision. Nothing is written when validation fails."""
    load_policies(paths, config)
    return coord.put_policy(policy_files(paths))


def write_folder(folder: Path, files: Mapping[str, str]) -> None:
    """Make ``folder`` hold exactly ``files`` (each replaced atomically; files no longer wanted removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)
    for f in folder.iterdir():
        if f.is_file() and not f.name.startswith(".") and f.name not in files:
            f.unlink()


class PolicyMirror:
    """Keeps ``folder`` equal to the policy stored in etcd; ``on_change(revision)`` after each new revision."""

    def __init__(self, coord: Coordinator, folder: str | Path, on_change: Callable[[int], None]):
        self.coord = coord
        self.folder = Path(folder)
        self.on_change = on_change
        self.revision = 0  # 0: etcd holds no policy yet (the local files stay in force)
        self.applied_at: float | None = None
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] | None = None

    def sync(self) -> int:
        with self._lock:
            got = self.coord.policy()
            if got is None or got.revision <= self.revision:
                return self.revision
            write_folder(self.folder, got.files)
            self.revision = got.revision
            self.applied_at = time.time()
        log.info("policy revision %d from the cluster", got.revision)
        self.on_change(got.revision)
        return got.revision

    def start(self) -> PolicyMirror:
        self._cancel = self.coord.watch("policy", self.sync)
        self.sync()  # after the watch is set up, so no revision falls between
        return self

    def stop(self) -> None:
        if self._cancel is not None:
            self._cancel()
            self._cancel = None
