"""``pfepo bench whatif`` on a small history: every run reports, the cold run over the reference's window
decides as the reference does, the later ones reuse the cache, the threshold edit is judged over the tape
and decides as the plain replay of the edited policy; under the pre-warm (a real child process) the first
what-if after a start decides as the cold run and replays no predictor step, and after a restart the child
extends the snapshot and the what-if decides as the cache that never left memory."""

from __future__ import annotations

import json

from pfepo.cli import main


def test_whatif_bench_compares_reference_and_cached_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    out = tmp_path / "w.json"
    assert main(["bench", "whatif", "--hours", "0.5", "--endpoints", "20", "--check-edited",
                 "--restart-gap", "120", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert set(runs) == {"reference", "cold", "warm", "edited", "edited-plain", "edited-actions", "prewarm-first",
                         "prewarm-restart"}
    assert runs["reference"]["acted"] == 10 and runs["reference"]["weight_steps"] > 0
    assert runs["cold"]["same_decisions_as_reference"] is True, runs["cold"]  # same window
    assert runs["warm"]["cached_steps"] >= runs["warm"]["steps"] - 20  # the restart gap and the young tail
    assert runs["warm"]["same_decisions_as_reference"] is True and runs["warm"]["compared_with"] == "prewarm-restart"
    first, again = runs["prewarm-first"], runs["prewarm-restart"]
    assert first["same_decisions_as_reference"] is True and first["compared_with"] == "cold", first
    for r in (first, again):
        assert r["cached_steps"] >= r["steps"] - 10 and r["first_answer_s"] > r["seconds"]
    assert doc["prewarm"]["prewarm-first"]["adopted"] == 0 and doc["prewarm"]["prewarm-restart"]["adopted"] == 1
    assert runs["edited-actions"]["cached_steps"] >= runs["edited-actions"]["steps"] - 10
    assert runs["edited"]["cached_steps"] == 0 and runs["edited"]["path"] == "judged"
    assert runs["edited-plain"]["same_decisions_as_reference"] is True, runs["edited-plain"]  # vs "edited"
    assert runs["edited-plain"]["compared_with"] == "edited"
    assert "cold:" in capsys.readouterr().out
