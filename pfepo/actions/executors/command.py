"""An argv template run without a shell, in its own process group, killed on timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

from pfepo.actions.config import CommandExecutorConfig
from pfepo.actions.executors.base import BaseExecutor, ExecutionResult, ScaleRequest, check_values, clip


class CommandExecutor(BaseExecutor):
    """Run an argv template (never through a shell) with a timeout; exit status 0 is success.

    The child gets its own session so a timeout kills it *and* anything it started (by process group
    id, which is the child's pid). ``PFEPO_*`` environment variables carry the request, including
    ``PFEPO_IDEMPOTENCY_KEY``.
    """

    kind = "command"

    def __init__(self, name: str, cfg: CommandExecutorConfig, **_: Any):
        super().__init__(name)
        self.cfg = cfg

    def argv(self, request: ScaleRequest) -> list[str]:
        values = request.fields()
        # Templates were validated to hold only plain {placeholder} fields, so format_map is safe here.
        return [a.format_map(values) for a in self.cfg.argv]

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        start = time.monotonic()
        bad = check_values(request)
        if bad:
            return ExecutionResult(False, "refused", 0, 0.0, None, bad)
        argv = self.argv(request)
        env = {**os.environ, **self.cfg.env,
               "PFEPO_SERVICE": request.service, "PFEPO_REGION": request.region,
               "PFEPO_APPLICATION": request.application, "PFEPO_CAPACITY": str(int(request.desired_capacity)),
               "PFEPO_DECISION_ID": request.decision_id, "PFEPO_IDEMPOTENCY_KEY": request.idempotency_key,
               "PFEPO_ACTION": request.action}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, cwd=self.cfg.cwd, env=env, start_new_session=True)
        except OSError as exc:
            return ExecutionResult(False, "cannot start", 1, time.monotonic() - start, None,
                                   f"{argv[0]}: {exc.strerror or exc}")
        try:
            out, _ = proc.communicate(timeout=self.cfg.timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, _ = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe
                proc.kill()
                out = b""
            return ExecutionResult(False, f"timed out after {self.cfg.timeout_s:g} s (killed)", 1,
                                   time.monotonic() - start, proc.returncode, "timeout",
                                   clip(out.decode(errors="replace")))
        text = clip(out.decode(errors="replace"))
        code = proc.returncode
        if code == 0:
            return ExecutionResult(True, "exit 0", 1, time.monotonic() - start, 0, None, text)
        what = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        return ExecutionResult(False, what, 1, time.monotonic() - start, code, what, text)
