"""PNG for ``pfepo bench failover``: per mode, traffic share per region and request error rate."""

from __future__ import annotations

import json
from pathlib import Path


def plot(workdir: Path, modes: list[str], sc, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(modes), 1, figsize=(10, 3.2 * len(modes)), sharex=True, squeeze=False)
    for ax, mode in zip(axes[:, 0], modes, strict=False):
        tl = json.loads((workdir / mode / "timeline.json").read_text())
        rows = [r for r in tl["weights"] if "weights" in r]
        t = [r["t"] for r in rows]
        for region in rows[0]["weights"] if rows else []:
            total = [sum(r["weights"].values()) or 1 for r in rows]
            ax.plot(t, [100 * r["weights"][region] / tot for r, tot in zip(rows, total, strict=False)],
                    label=f"{region} share %")
        reqs = [json.loads(line) for line in (workdir / mode / "requests.jsonl").read_text().splitlines()]
        if reqs:
            t0 = min(r["ts"] for r in reqs)
            buckets: dict[int, list[int]] = {}
            for r in reqs:
                b = buckets.setdefault(int(r["ts"] - t0), [0, 0])
                b[0] += 1
                b[1] += r["server"] is None
            xs = sorted(buckets)
            ax2 = ax.twinx()
            ax2.plot(xs, [100 * buckets[x][1] / buckets[x][0] for x in xs], color="black", lw=0.8,
                     label="errors %")
            ax2.set_ylabel("request errors %")
            ax2.set_ylim(0, 100)
        for ev in tl["events"]:
            ax.axvline(ev["t"], color="grey", ls="--", lw=0.8)
        ax.set_title(mode)
        ax.set_ylabel("traffic share (bucket weight) %")
        ax.set_ylim(0, 100)
        ax.legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("seconds (dashed lines: benign spike, degradation start, failure)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
