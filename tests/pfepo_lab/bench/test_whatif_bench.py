"""``pfepo bench whatif`` on a small history: every run reports, the cold run over the reference's window
decides as the reference does, the later ones reuse the cache, the threshold edit is judged over the tape
and decides as the plain replay of the edited policy."""

from __future__ import annotations

import json

from pfepo.cli import main


def test_whatif_bench_compares_reference_and_cached_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    out = tmp_path / "w.json"
    assert main(["bench", "whatif", "--hours", "0.5", "--endpoints", "20", "--check-edited", "--json",
                 str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"reference", "cold", "warm", "edited", "edited-plain", "edited-actions"}
    assert runs["reference"]["acted"] == 10 and runs["reference"]["weight_steps"] > 0
    assert runs["cold"]["same_decisions_as_reference"] is True, runs["cold"]  # same window
    assert runs["warm"]["cached_steps"] >= runs["warm"]["steps"] - 10
    assert runs["edited-actions"]["cached_steps"] >= runs["edited-actions"]["steps"] - 10
    assert runs["edited"]["cached_steps"] == 0 and runs["edited"]["path"] == "judged"
    assert runs["edited-plain"]["same_decisions_as_reference"] is True, runs["edited-plain"]  # vs "edited"
    assert runs["edited-plain"]["compared_with"] == "edited"
    assert "cold:" in capsys.readouterr().out
