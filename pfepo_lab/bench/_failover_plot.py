"""PNG for ``pfepo bench failover``: one panel per scenario; per mode the failing region's traffic share
(bucket weight) and the request error rate over time, the failure as a vertical line."""

from __future__ import annotations

import json
from pathlib import Path

COLORS = {"static": "tab:grey", "reactive": "tab:orange", "predictive": "tab:blue"}


def _errors(path: Path, t0: float) -> tuple[list[int], list[float]]:
    buckets: dict[int, list[int]] = {}
    for p in (path / "requests.jsonl", path / "keepalive.jsonl"):
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            r = json.loads(line)
            b = buckets.setdefault(int(r["ts"] - t0), [0, 0])
            b[0] += 1
            b[1] += r["server"] is None
    xs = sorted(buckets)
    return xs, [100 * buckets[x][1] / buckets[x][0] for x in xs]


def plot(workdir: Path, scenarios: list[str], modes: list[str], sc, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(scenarios), 1, figsize=(10, 2.8 * len(scenarios)), sharex=True, squeeze=False)
    region = sc.degrade_region
    for ax, name in zip(axes[:, 0], scenarios, strict=False):
        ax2 = ax.twinx()
        for mode in modes:
            run = workdir / name / mode
            if not (run / "timeline.json").exists():
                continue
            tl = json.loads((run / "timeline.json").read_text())
            rows = [r for r in tl["rows"] if "weights" in r]
            ax.plot([r["t"] for r in rows],
                    [100 * r["weights"][region] / (sum(r["weights"].values()) or 1) for r in rows],
                    color=COLORS.get(mode), label=f"{mode}: {region} share %")
            reqs = run / "requests.jsonl"
            if reqs.exists() and reqs.stat().st_size:
                t0 = json.loads(reqs.read_text().splitlines()[0])["ts"]
                xs, ys = _errors(run, t0)
                ax2.plot(xs, ys, color=COLORS.get(mode), lw=0.7, ls=":")
            for ev in tl["events"]:
                ax.axvline(ev["t"], color="grey", ls="--", lw=0.6)
        ax.set_title(name)
        ax.set_ylabel(f"{region} share %")
        ax.set_ylim(0, 100)
        ax2.set_ylabel("errors % (dotted)")
        ax2.set_ylim(0, 100)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds (dashed: benign spike, degradation start, failure)")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
