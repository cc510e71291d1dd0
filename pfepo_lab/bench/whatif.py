"""``pfepo bench whatif``: the console's what-if replay, before and after its caches, in one run.

Synthetic history in a throw-away SQLite store: ``--endpoints`` endpoints in regions of 10, one sample
per 10 s each (error rate and health per endpoint, latency and loss per region uplink) over ``--hours``;
the latency of region r0 ramps up over the last 10 minutes and its endpoints report down in the last
100 s. Then, against the same history:

1. ``reference``: the plain path (``replay_policy(fast=False)``): the window replayed from scratch, every
   step through the policies and the planner -- what the console did before the cache;
2. ``cold``: the console's path with an empty cache (predictor replay in pieces, quiet steps skipped),
   over the same window;
3. ``edited``: the policy with a different criterion threshold, over the same window: only the engine's
   evidence step runs, over the tape of threshold-free state the cold run recorded (``replaycache``;
   "path: judged"); with ``--check-edited`` also ``edited-plain``: the edited policy on the plain path,
   compared with it;
4. ``prewarm-first``: the cold case under the daemon's pre-warm (``console.prewarm``): a fresh cache (a
   daemon just started, no snapshot in its state_dir) whose history is replayed by the real child process
   (``python -m pfepo.console.prewarm``, nice 19) and adopted, then the what-if over the same window as
   ``cold``; its decisions are compared with ``cold``'s. Printed: the child's wall and CPU time, the
   adoption, the what-if, and "first answer" = child + adoption + what-if (what an operator who opens the
   page as the daemon starts waits);
5. ``prewarm-restart``: the daemon restarted ``--restart-gap`` seconds of history later (default 600): a
   fresh cache, the child starts from the snapshot the first one saved and replays only the new history;
   compared with ``warm``;
6. ``warm``: the shipped policy over that later window from the cold run's cache (extended by the new
   steps in this process: the family never left memory; same window as ``prewarm-restart``);
7. ``edited-actions``: the policy with only its actions edited (same thresholds: the cache is used).

Prints the time of each, and whether the decisions (endpoints that acted, weight steps) equal those of
the run they are compared with: cold and edited with the reference, edited-plain with edited,
prewarm-first with cold (the same window, its end fixed when the history is written), warm with
prewarm-restart (the same later window). Wall time and this process's CPU time (on a shared machine the CPU time is the steadier
figure), the load average before and after, the cache path each run took and the tape's size. Run with
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pfepo.config import PfepoConfig

REPO_POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


def register(sub) -> None:
    p = sub.add_parser("whatif", help="console what-if replay: reference vs cached, same history, same run",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--hours", type=float, default=24.0, help="history to replay (default 24)")
    p.add_argument("--endpoints", type=int, default=50, help="endpoints, in regions of 10 (default 50)")
    p.add_argument("--skip-reference", action="store_true", help="skip the (slow) reference run")
    p.add_argument("--check-edited", action="store_true",
                   help="also replay the threshold-edited policy on the plain path and compare its decisions")
    p.add_argument("--restart-gap", type=float, default=600.0,
                   help="history written while the daemon was down, for prewarm-restart (s, default 600)")
    p.add_argument("--fit-ahead", action="store_true",
                   help="cold replays with the console.fitahead worker (refits and history reading in a second "
                        "process; opt-in, PFEPO_WHATIF_FIT_AHEAD=1); default: one process")
    p.add_argument("--json", metavar="OUT", dest="json_out", help="write results as JSON")
    p.set_defaults(func=run)


def _history(rt, regions: int, per: int, hours: float, now: float) -> int:
    from pfepo.telemetry.samples import Sample

    n = int(hours * 360)
    rng = np.random.default_rng(0)
    for i in range(regions):
        rows = []
        for k in range(n):
            t = now - hours * 3600 + 10 * k
            lat = 20 + rng.normal(0, 2) + (200 * max(0, k - n + 60) / 60 if i == 0 else 0)
            rows += [Sample(t, f"uplink:r{i}", "latency_ms", lat), Sample(t, f"uplink:r{i}", "loss_pct", 0.0)]
            for j in range(per):
                rows += [Sample(t, f"r{i}-{j}", "health_up", 0.0 if (i == 0 and k > n - 10) else 1.0),
                         Sample(t, f"r{i}-{j}", "error_rate_pct", max(0.0, rng.normal(0.5, 0.2)))]
        rt.store.write(rows)
    return n


def _decisions(res: dict) -> tuple:
    return (sorted(res["acts"]), [(c["ts"], c["service"], c["region"], c["from"], c["to"]) for c in res["changes"]])


def run(args) -> int:
    from pfepo.console import whatif

    if args.fit_ahead:  # the pre-warm child too
        os.environ["PFEPO_WHATIF_FIT_AHEAD"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix="pfepo-bench-whatif-"))
    try:
        regions, per, target, cfg, rt = setup(tmp, args.endpoints)
        out: dict = {"hours": args.hours, "endpoints": regions * per, "runs": {}}
        now = time.time()
        t0 = time.perf_counter()
        steps = _history(rt, regions, per, args.hours, now)
        print(f"history: {steps} steps x {regions * per} endpoints written in {time.perf_counter() - t0:.1f} s",
              flush=True)
        text = target.read_text()
        edited_thr = text.replace("threshold: 150", "threshold: 120", 1)
        edited_act = text.replace("step_percent: 10", "step_percent: 20", 1)
        jobs = whatif.Jobs()
        ref = None

        end = [time.time()]  # the window's end: the same for the reference and the cold run

        out["_res"] = {}

        def one(name: str, policy_text: str, fast: bool, wait: float = 0.0, against: dict | None = None,
                cache=None, compare: bool = True) -> dict:
            ps, problems, folder = whatif.validate(cfg, target, policy_text)
            if ps is None:
                raise SystemExit(f"policy invalid: {problems}")
            if wait:  # a minute of history later: the cache is extended, not rebuilt
                _advance(rt, regions, per, wait, end[0])
                end[0] += wait
            job = whatif.Job(name)
            use = cache or jobs.cache
            use.fit_ahead = args.fit_ahead
            use.last_ahead = {}
            kids = _children_cpu()
            t, cpu = time.perf_counter(), time.process_time()
            res = whatif.replay_policy(rt, ps, folder / target.name, args.hours, job,
                                       cache=use if fast else None, fast=fast, until=end[0])
            took, cpu = time.perf_counter() - t, time.process_time() - cpu
            worker_cpu = _children_cpu() - kids
            shutil.rmtree(folder, ignore_errors=True)
            base = (against if against is not None else ref) if compare else None
            same = None if base is None else _decisions(res) == _decisions(base)
            path = (use.last_path or "-") if fast else "plain"
            out["_res"][name] = res
            row = {"seconds": round(took, 2), "cpu_seconds": round(cpu, 2), "path": path, "steps": res["steps"],
                   "acted": len(res["acts"]),
                   "weight_steps": len(res["changes"]), "cached_steps": res.get("cached_steps", 0),
                   "skipped_steps": res.get("skipped_steps", 0), "same_decisions_as_reference": same,
                   "compared_with": None if base is None else (_name(out, against) if against is not None else "reference"),
                   "worker_cpu_seconds": round(worker_cpu, 2), "fit_ahead": dict(use.last_ahead) if fast else {}}
            out["runs"][name] = row
            print(f"{name:>15}: {took:6.1f} s (CPU {cpu:5.1f} s) path {path:>8}, steps {res['steps']}, acted {len(res['acts'])}, weight steps "
                  f"{len(res['changes'])}, from cache {row['cached_steps']}, quiet steps skipped "
                  f"{row['skipped_steps']}" + ("" if same is None else f", same decisions as {row['compared_with']}: {same}")
                  + (f"; fit-ahead worker CPU {worker_cpu:.1f} s, {_ahead(row['fit_ahead'])}" if row["fit_ahead"] else ""),
                  flush=True)
            return res

        out["load_before"] = [round(v, 2) for v in os.getloadavg()]
        print(f"load average before: {out['load_before']}", flush=True)
        if not args.skip_reference:
            ref = one("reference", text, fast=False)
        one("cold", text, fast=True)
        edited = one("edited", edited_thr, fast=True)  # over the cold run's window
        if args.check_edited:  # the same window, from scratch
            one("edited-plain", edited_thr, fast=False, against=edited)
        first = _prewarm(cfg, args.hours, end[0], out, "prewarm-first")
        one("prewarm-first", text, fast=True, cache=first, against=out["_res"]["cold"])
        _advance(rt, regions, per, args.restart_gap, end[0])
        end[0] += args.restart_gap
        again = _prewarm(cfg, args.hours, end[0], out, "prewarm-restart")
        one("prewarm-restart", text, fast=True, cache=again, compare=False)  # a later window: compared by "warm"
        one("warm", text, fast=True, against=out["_res"]["prewarm-restart"])
        for name in ("prewarm-first", "prewarm-restart"):
            r, p = out["runs"][name], out["prewarm"][name]
            r["first_answer_s"] = round(p["child_wall_s"] + p["adopt_s"] + r["seconds"], 2)
            print(f"{name:>15}: first answer {r['first_answer_s']:.1f} s after the start (child {p['child_wall_s']:.1f} s, "
                  f"CPU {p['child_cpu_s']:.1f} s; adoption {p['adopt_s']:.2f} s; what-if {r['seconds']:.1f} s, CPU "
                  f"{r['cpu_seconds']:.1f} s); snapshot {p['bytes'] / 1e6:.1f} MB", flush=True)
        one("edited-actions", edited_act, fast=True, compare=False)  # other actions, a later window: nothing to match
        del out["_res"]
        out["load_after"] = [round(v, 2) for v in os.getloadavg()]
        out["tape_mb"] = round(jobs.cache.tape_bytes() / 1e6, 1)
        print(f"load average after: {out['load_after']}; tape of threshold-free state: {out['tape_mb']} MB", flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(out, indent=2))
        rt.writer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _ahead(st: dict) -> str:
    return (f"fits from it {st['used']}, fitted here {st['fitted_here']}, pieces it read "
            f"{st['pieces'] if not st['read_here'] else 0}, read here {st['read_here']}")


def _name(out: dict, res: dict) -> str:
    return next(k for k, v in out["_res"].items() if v is res)


def _prewarm(cfg, hours: float, until: float, out: dict, name: str):
    """A fresh what-if cache filled by the daemon's pre-warm (the real child process) for the window
    ending at ``until``; its timings go to ``out["prewarm"][name]``."""
    import resource

    from pfepo.console import prewarm, whatif

    cache = whatif.Jobs().cache
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pre = prewarm.Prewarm(cfg, cache, prewarm.snapshot_path(cfg), hours=hours, until=until, every_s=1e9)
    ok = pre.run_once()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not ok:
        raise SystemExit(f"pre-warm failed: {pre.error}")
    info = dict(pre.last, child_cpu_s=round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2))
    info.pop("spans", None)
    out.setdefault("prewarm", {})[name] = info
    cache.prewarm = None
    return cache


def _advance(rt, regions: int, per: int, seconds: float, start: float) -> None:
    """``seconds`` more of history from ``start``: quiet samples."""
    from pfepo.telemetry.samples import Sample

    rows = []
    for k in range(int(seconds // 10)):
        t = start + 10 * k
        for i in range(regions):
            rows += [Sample(t, f"uplink:r{i}", "latency_ms", 20.0), Sample(t, f"uplink:r{i}", "loss_pct", 0.0)]
            rows += [Sample(t, f"r{i}-{j}", "error_rate_pct", 0.5) for j in range(per)]
    rt.store.write(rows)


def runtime(tmp: Path, regions: int, per: int) -> tuple[Path, PfepoConfig, object]:
    """A runtime in ``tmp`` with ``regions`` x ``per`` endpoints and the repo's default policy copied into its
    own folder (edits must not touch the repo); (policy file, config, runtime). Tests build their labs
    with it too."""
    from pfepo.daemon import build_runtime

    pdir = tmp / "pol"
    pdir.mkdir()
    target = pdir / "default.yaml"
    shutil.copyfile(REPO_POLICY, target)
    cfg = synthetic_config(tmp, pdir, regions, per)
    return target, cfg, build_runtime(cfg)


def setup(tmp: Path, endpoints: int) -> tuple[int, int, Path, PfepoConfig, object]:
    """The bench's runtime: ``endpoints`` spread as regions of up to 10; (regions, per, policy, cfg, rt).
    Shared with ``benchmarks/whatif_cold.py`` so both time the same set-up."""
    regions, per = max(1, (endpoints + 9) // 10), min(10, endpoints)
    return (regions, per, *runtime(tmp, regions, per))


def synthetic_config(tmp: Path, policy_dir: Path, regions: int, per: int) -> PfepoConfig:
    """A daemon config of ``regions`` regions x ``per`` endpoints behind one service ``web`` (equal
    weights), SQLite history and state under ``tmp``, the shipped model, policies from ``policy_dir``:
    the synthetic history's shape, shared by this bench and the what-if cache tests."""
    from pfepo.config import PfepoConfig

    return PfepoConfig.model_validate({
        "state_dir": str(tmp / "st"), "history": {"backend": "sqlite", "path": str(tmp / "h.sqlite")},
        "switches": [{"name": "core", "dpid": 1}] + [{"name": f"s{i}", "dpid": 0x11 + i} for i in range(regions)],
        "regions": [{"name": f"r{i}", "switch": f"s{i}", "uplink": {"switch": "core", "port": i + 1},
                     "endpoints": [{"name": f"r{i}-{j}", "ip": f"10.{i}.0.{j + 2}",
                                    "mac": f"00:00:00:00:{i:02x}:{j + 2:02x}", "port": j + 2} for j in range(per)]}
                    for i in range(regions)],
        "policy": {"paths": [str(policy_dir)]}, "predict": {"model_path": "shipped"},
        "services": [{"name": "web", "vip": "10.9.0.1", "vip_mac": "00:00:00:09:00:01", "port": 80,
                      "weights": {f"r{i}": 1 for i in range(regions)}}]})
