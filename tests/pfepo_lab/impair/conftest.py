"""A namespace lab shared by the impairment tests (built once per module; cleared between tests)."""

from __future__ import annotations

import pytest

from pfepo_lab.impair.lab import RelayLab, can_run

needs_lab = pytest.mark.skipif(can_run() is not None, reason=f"namespace lab unavailable: {can_run()}")


@pytest.fixture(scope="module")
def lab():
    if can_run() is not None:
        pytest.skip(f"namespace lab unavailable: {can_run()}")
    with RelayLab() as lab:
        lab.echo_server()
        yield lab


@pytest.fixture
def imp(lab):
    """An Impairer on the lab, and a clean wire again afterwards whatever the test did."""
    impairer = lab.impairer()
    yield impairer
    for target in ("lnk", "left", "right"):
        impairer.clear(target)
