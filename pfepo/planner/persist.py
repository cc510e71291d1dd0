"""The planner's state on disk (``state_dir/planner.json``), written atomically.

Why: a restart must resume a drain where it stopped. Without it the daemon came back with the operator's
nominal weights (a region drained to 0 got traffic again at reconnect) and skipped the stable wait and
the fail-back ramp. The file is replaced with write-to-temp + fsync + rename, so a kill -9 at any moment
leaves either the old or the new state, never a torn file; it is written only when the state changed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class PlannerStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._last: str | None = None
        self.errors = 0

    def load(self) -> dict | None:
        """The saved state, or None (missing, unreadable or not JSON: logged, never raised)."""
        try:
            text = self.path.read_text()
            doc = json.loads(text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable planner state %s: %s", self.path, exc)
            return None
        self._last = text
        return doc if isinstance(doc, dict) else None

    def save(self, doc: dict) -> bool:
        """Write ``doc`` if it differs from what is on disk; False on no change or an I/O error (logged)."""
        text = json.dumps(doc, sort_keys=True)
        if text == self._last:
            return False
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            self.errors += 1
            log.error("cannot save planner state to %s: %s", self.path, exc)
            return False
        self._last = text
        return True
