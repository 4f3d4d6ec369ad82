"""The secrets a database URL can hold, and how to mask them (safe to print, log or store).

A URL holds a secret in its ``user:password@`` part or in a query parameter that libpq (or
another driver) reads as one: :data:`SECRET_PARAMETERS`. Every URL that reaches a log line, an
exception, the terminal, a report or an export goes through :func:`mask_url`; a URL that is
stored with a study must not hold one at all (:func:`has_secret`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# Connection parameters whose value is a secret: libpq's password fields (PQconndefaults marks
# them with dispchar "*": password, sslpassword, oauth_client_secret), its SCRAM keys (derived
# from the password), and the spellings other drivers accept. Matched case-insensitively, after
# percent-decoding the key; tests/reliability/test_security.py checks it against libpq's list.
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "sslpassword",
        "oauth_client_secret",
        "scram_client_key",
        "scram_server_key",
        "passwd",
        "pwd",
    }
)
_QUERY_PAIR = re.compile(r"(?P<head>[?&](?P<key>[^=&]*)=)(?P<value>[^&]*)")
# user:password@; SQLAlchemy ends the password at the first "@", a careless URL at the last:
# masking takes the longer, scrubbing both.
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[\w+]+://[^:/@]*:)(?P<pw>.*)@")
_USERINFO_PASSWORD_SHORT = re.compile(r"^(?P<head>[\w+]+://[^:/@]*:)(?P<pw>[^@]*)@")


def _is_secret_key(key: str) -> bool:
    return unquote(key).strip().lower() in SECRET_PARAMETERS


def mask_url(url: str) -> str:
    """The URL with every secret replaced by ``***`` (safe to print, log or store).

    The secrets are the ``user:password@`` part and every query parameter named in
    :data:`SECRET_PARAMETERS` (``password``, ``sslpassword``, ``oauth_client_secret``, ...).

    Example:
        >>> mask_url("postgresql+psycopg2://alice:s3cret@db/reid?sslpassword=k3y")
        'postgresql+psycopg2://alice:***@db/reid?sslpassword=***'
    """
    url = _USERINFO_PASSWORD.sub(r"\g<head>***@", url, count=1)
    return _QUERY_PAIR.sub(lambda m: m["head"] + "***" if _is_secret_key(m["key"]) else m[0], url)


def url_secrets(url: str) -> list[str]:
    """Every secret value the URL holds, as written and percent-decoded (to scrub messages).

    Example:
        >>> url_secrets("postgresql://u:p%40ss@h/db?sslpassword=k")
        ['p%40ss', 'p@ss', 'k']
        >>> url_secrets("postgresql://u:p@ss@h/db")
        ['p@ss', 'p']
    """
    found: list[str] = []
    for pattern in (_USERINFO_PASSWORD, _USERINFO_PASSWORD_SHORT):
        userinfo = pattern.match(url)
        if userinfo and userinfo["pw"]:
            found.append(userinfo["pw"])
    for match in _QUERY_PAIR.finditer(url):
        if _is_secret_key(match["key"]) and match["value"]:
            found.append(match["value"])
    return list(dict.fromkeys(v for raw in found for v in (raw, unquote(raw))))


def has_secret(url: str) -> bool:
    """Whether the URL holds a password or another secret connection parameter."""
    return mask_url(url) != url


__all__ = ["SECRET_PARAMETERS", "has_secret", "mask_url", "url_secrets"]
