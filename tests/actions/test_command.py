"""CommandExecutor: argv templates run without a shell, with a timeout that kills the process group."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pfepo.actions.config import CommandExecutorConfig
from pfepo.actions.executors import CommandExecutor, ScaleRequest
from tests.waiting import wait_until

REQ = ScaleRequest("shop", "us", "web", 5, "cmd", "d-1")


def run(argv, req=REQ, **kw):
    ex = CommandExecutor("cmd", CommandExecutorConfig(type="command", argv=argv, **kw))
    return ex, ex.execute(req)


def test_placeholders_are_filled_and_exit_0_is_success():
    ex, res = run(["/bin/echo", "scale", "{service}", "{region}", "{application}", "--to={capacity}"])
    assert res.ok and res.status == 0 and res.output == "scale shop us web --to=5\n"
    assert ex.target(REQ) == "us/web"


def test_request_is_in_the_environment():
    code = "import os; print(os.environ['PFEPO_IDEMPOTENCY_KEY'], os.environ['PFEPO_CAPACITY'], os.environ['EXTRA'])"
    _, res = run([sys.executable, "-c", code], env={"EXTRA": "yes"})
    assert res.ok and res.output.split() == [REQ.idempotency_key, "5", "yes"]


def test_no_shell_interprets_values(tmp_path: Path):
    marker = tmp_path / "pwned"
    req = ScaleRequest("shop", "us", f"web; touch {marker} $(touch {marker})", 5, "cmd", "d-1")
    _, res = run(["/bin/echo", "{application}"], req=req)
    assert res.ok and res.output == f"web; touch {marker} $(touch {marker})\n"
    assert not marker.exists()


def test_option_like_values_are_refused():
    req = ScaleRequest("shop", "us", "--delete-everything", 5, "cmd", "d-1")
    _, res = run(["/bin/echo", "{application}"], req=req)
    assert not res.ok and res.attempts == 0 and "not allowed" in res.error


def test_nonzero_exit_and_missing_program_fail():
    _, res = run([sys.executable, "-c", "import sys; print('no quota'); sys.exit(3)"])
    assert not res.ok and res.status == 3 and res.detail == "exit 3" and "no quota" in res.output
    _, res = run(["/nonexistent/scale-tool", "{region}"])
    assert not res.ok and res.detail == "cannot start" and "/nonexistent/scale-tool" in res.error


def test_timeout_kills_the_command():
    t0 = time.monotonic()
    _, res = run(["sleep", "5"], timeout_s=0.5)
    took = time.monotonic() - t0
    assert not res.ok and res.error == "timeout" and "timed out after 0.5 s" in res.detail
    assert 0.45 <= took < 2.0, took


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie waiting for a reaper is dead too


def test_timeout_also_kills_what_the_command_started(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    code = (f"import subprocess, time; p = subprocess.Popen(['sleep', '30']); "
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(30)")  # hangs on purpose: killed
    _, res = run([sys.executable, "-c", code], timeout_s=1.0)
    assert not res.ok and res.error == "timeout"
    grandchild = int(pidfile.read_text())
    try:
        wait_until(lambda: _gone(grandchild), timeout=2, message="the grandchild to be killed")
    except AssertionError:  # clean up before failing: it is our own test's process
        os.kill(grandchild, 9)
        raise
