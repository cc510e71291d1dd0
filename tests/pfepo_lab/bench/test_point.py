"""bench_point: a failing benchmark point still comes back (error recorded, temp dir kept), teardowns always run."""

from __future__ import annotations

import asyncio

from pfepo_lab.bench._point import bench_point


async def _run(tmp, fail: bool, keep: bool = False) -> tuple[dict, list[str]]:
    point: dict = {"switches": 3}
    done: list[str] = []

    async def close() -> None:
        done.append("close")

    async with bench_point(point, tmp, keep) as stack:
        stack.callback(done.append, "stop")  # registered first: runs last
        stack.push_async_callback(close)
        point["measured"] = 1
        if fail:
            raise RuntimeError("daemon exited (1)")
        return point, done
    return point, done


def test_a_failing_point_is_returned_with_its_error_and_temp_dir_after_teardown(tmp_path):
    tmp = tmp_path / "point"
    tmp.mkdir()
    point, done = asyncio.run(_run(tmp, fail=True))
    assert point == {"switches": 3, "measured": 1, "error": "RuntimeError: daemon exited (1)", "tmp": str(tmp)}
    assert done == ["close", "stop"] and tmp.exists()


def test_a_good_point_removes_its_temp_dir_unless_kept(tmp_path):
    tmp = tmp_path / "point"
    tmp.mkdir()
    point, done = asyncio.run(_run(tmp, fail=False))
    assert "error" not in point and "tmp" not in point and not tmp.exists()
    assert done == ["close", "stop"]
    tmp.mkdir()
    point, _ = asyncio.run(_run(tmp, fail=False, keep=True))
    assert point["tmp"] == str(tmp) and tmp.exists()
