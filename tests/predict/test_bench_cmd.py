"""``pfepo bench predict`` runs and reports its keys (a smoke test on tiny sizes, not a timing test)."""

from __future__ import annotations

import json

from pfepo.cli import main


def test_bench_predict_smoke(tmp_path, capsys):
    out = tmp_path / "b.json"
    args = ["bench", "predict", "--series", "50", "--ticks", "3", "--warmup", "45", "--naive-series", "1", "--rows", "3000",
            "--legacy-rows", "200", "--json", str(out)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert [r["fits_per_tick"] for r in res["sizes"]] == [2, 0]
    assert all(r["series"] == 50 and r["series_per_s_per_core"] > 0 for r in res["sizes"])
    assert res["naive"]["series_per_s_per_core"] > 0 and "extrapolated" in res["naive"]["note"]
    assert set(res["speedup_vs_naive"]) == {"50"}
    uni = res["univariate"]
    assert uni["rows"] == 3000 and uni["rows_per_s"] > 0 and uni["legacy_rows_per_s"] > 0 and "met" in uni
    passes = uni["rows_per_s_passes"]  # the default: three timed passes, the median reported
    assert len(passes) == 3 and len(uni["legacy_rows_per_s_passes"]) == 3
    assert uni["rows_per_s"] == sorted(passes)[1]
