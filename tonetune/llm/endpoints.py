"""An endpoint's URL as shown (credentials hidden) and as identified (for cache keys), in one place.

``http://user:secret@localhost:8000/v1/`` is shown as ``http://***@localhost:8000/v1/`` in every
report, card, log line and error, and identified as ``http://127.0.0.1:8000/v1``: the cache key
depends on neither the password (rotating it resends nothing) nor on how loopback is spelled.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"
LOOPBACK = "127.0.0.1"
DEFAULT_PORTS = {"http": 80, "https": 443}
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s'\"]+)@")


def hide_credentials(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` (a message, a saved config) as ``scheme://***@``."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{HIDDEN}@", text)


def endpoint_identity(url: str) -> str:
    """What identifies a server in cache keys: no credentials, loopback as 127.0.0.1, and so on.

    Also a lower-case host, no default port, no trailing slash; ``http://127.0.0.1:8000/v1`` and
    ``https://api.openai.com/v1`` stay as they are, so existing caches keep their keys.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = _host(parts.hostname or "")
    port = parts.port
    netloc = host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def _host(name: str) -> str:
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return LOOPBACK
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    if address.is_loopback:
        return LOOPBACK
    return f"[{address}]" if address.version == 6 else str(address)
