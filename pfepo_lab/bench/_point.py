"""One benchmark point's lifecycle, shared by the fake-switch benches: whatever happens, the point is returned.

A point that fails records ``point["error"]`` (instead of losing the figures measured so far) and keeps its
temp dir for the post-mortem (``point["tmp"]``); the processes and sockets it started are torn down in
every case, before the temp dir is removed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def bench_point(point: dict, tmp: Path, keep: bool = False) -> AsyncIterator[contextlib.AsyncExitStack]:
    """``async with bench_point(point, tmp) as stack:`` register teardowns on ``stack`` (run last-in first-out
    on the way out); an ``Exception`` inside ends the block as ``point["error"]``, not as a raise."""
    failed = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            yield stack
    except Exception as exc:  # noqa: BLE001 - reported in the point, with its temp dir kept
        point["error"] = f"{type(exc).__name__}: {exc}"
        failed = True
    finally:
        if keep or failed:
            point["tmp"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
