"""Bearer tokens with roles, resolved once at startup and compared in constant time.

A token comes from the config inline, from a file or from an environment variable; only its name and
role are ever logged or audited. Roles are ordered: ``read`` < ``operate`` (overrides) < ``admin``
(``force`` past the policy's safety rules).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from pfepo.config import MIN_TOKEN_CHARS, RestConfig

ROLES = ("read", "operate", "admin")


class TokenError(ValueError):
    """A token that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


ANONYMOUS = Principal("anonymous", "read")


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    secret: bytes

    def __repr__(self) -> str:  # never print a secret, even in a debugger or traceback
        return f"_Entry({self.principal!r}, secret=<{len(self.secret)} bytes>)"


class TokenTable:
    """Every configured token; ``lookup`` compares against all of them in constant time."""

    def __init__(self, entries: list[_Entry]):
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenTable({[e.principal for e in self._entries]})"

    def lookup(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer TOKEN`` header, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[7:].strip().encode("utf-8", "surrogateescape")
        found = None
        for e in self._entries:  # no early exit: the time does not depend on which token matched
            if hmac.compare_digest(given, e.secret):
                found = e.principal
        return found


def resolve_token(setting: str, token: str | None, token_file: str | None, token_env: str | None) -> str:
    """The token text from one of its sources; TokenError names the setting on any problem."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"{setting}.token_file: cannot read {token_file}: "
                             f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}") from None
        lines = text.strip().splitlines()
        value, where = (lines[0].strip() if lines else ""), f"{setting}.token_file ({token_file})"
    elif token_env is not None:
        value, where = os.environ.get(token_env, "").strip(), f"{setting}.token_env (${token_env})"
        if not value:
            raise TokenError(f"{where}: environment variable is not set or empty")
    else:
        value, where = (token or "").strip(), f"{setting}.token"
    if len(value) < MIN_TOKEN_CHARS:
        raise TokenError(f"{where}: token is shorter than {MIN_TOKEN_CHARS} characters")
    return value


def load_tokens(rest: RestConfig) -> TokenTable:
    """Resolve every ``rest.tokens`` entry; raise TokenError naming the first unusable one."""
    entries, seen = [], set()
    for i, t in enumerate(rest.tokens):
        value = resolve_token(f"rest.tokens.{i}", t.token, t.token_file, t.token_env)
        if value in seen:
            raise TokenError(f"rest.tokens.{i}: same token as an earlier entry (give each holder its own)")
        seen.add(value)
        entries.append(_Entry(Principal(t.name, t.role), value.encode()))
    return TokenTable(entries)


def single_token(name: str, role: str, token: str) -> TokenTable:
    """A table with one token (embedding the API, tests); the same length rule as the config."""
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(f"token for {name!r} is shorter than {MIN_TOKEN_CHARS} characters")
    return TokenTable([_Entry(Principal(name, role), token.encode())])
