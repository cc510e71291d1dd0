"""The state file: round trip, and clear errors for what a topology could get wrong."""

from __future__ import annotations

import json

import pytest

from pfepo_lab.impair.state import HostNode, ImpairState, LinkNode, StateError, load_state, save_state


def test_round_trip(tmp_path):
    st = ImpairState(
        links={"eu": LinkNode(pid=1234, a="d-eu-eth0", b="d-eu-eth1", control="/tmp/x/eu.ctl", region="eu")},
        hosts={"h1": HostNode(netns="ns1", intfs=["h1-eth0"])},
    )
    path = tmp_path / "sub" / "state.json"
    save_state(st, path)
    assert load_state(path) == st
    assert json.loads(path.read_text())["links"]["eu"]["pid"] == 1234
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left behind


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "top level must be a JSON object"),
        ({"version": 2}, "version 2 not supported"),
        ({"linkz": {}}, "unknown key"),
        ({"links": []}, "links must be an object"),
        ({"links": {"eu": {"a": "x", "b": "y", "control": "c"}}}, "exactly one of pid or netns"),
        ({"links": {"eu": {"pid": 1, "netns": "n", "a": "x", "b": "y", "control": "c"}}}, "exactly one"),
        ({"links": {"eu": {"pid": -3, "a": "x", "b": "y", "control": "c"}}}, "positive integer"),
        ({"links": {"eu": {"pid": 1, "a": "x", "control": "c"}}}, "links.eu.b is required"),
        ({"links": {"eu": {"pid": 1, "a": "x", "b": "y", "control": "c", "delay": 5}}}, "unknown key"),
        ({"hosts": {"h1": {"pid": 1, "intfs": "h1-eth0"}}}, "list of interface names"),
        ({"links": {"x": {"pid": 1, "a": "a", "b": "b", "control": "c"}}, "hosts": {"x": {"pid": 2}}}, "both as link"),
    ],
)
def test_invalid_documents_are_explained(tmp_path, doc, message):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match=message):
        load_state(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(StateError, match="cannot read"):
        load_state(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        load_state(tmp_path / "bad.json")
