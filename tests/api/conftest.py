"""API tokens for the REST tests: one per role, added to the shared config fixture."""

from __future__ import annotations

import pytest

TOKENS = {"read": "read-token-0123456789abcdef", "operate": "operate-token-0123456789abcdef",
          "admin": "admin-token-0123456789abcdef"}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def add_tokens(cfg_dict: dict) -> dict:
    cfg_dict.setdefault("rest", {})["tokens"] = [
        {"name": f"test-{role}", "role": role, "token": tok} for role, tok in TOKENS.items()]
    return cfg_dict


@pytest.fixture
def cfg_dict(cfg_dict):  # noqa: F811 - extends the shared fixture with API tokens
    return add_tokens(cfg_dict)
