"""Client address and scheme, believing forwarded headers only from trusted proxies.

Runs as WSGI middleware so that Flask's request, logging and rate limiting all see
the true client address. Walking X-Forwarded-For from the right and skipping our own
proxies means a client cannot prepend a forged address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

PEER_KEY = "appliance.peer_address"
FORWARDING_ERROR_KEY = "appliance.forwarding_error"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def address_in(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class TrustedProxyMiddleware:
    def __init__(self, app: Any, trusted_proxies: tuple[IPNetwork, ...]) -> None:
        self.app = app
        self.trusted = trusted_proxies

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_KEY] = peer
        if address_in(peer, self.trusted):
            self._apply_forwarded(environ, peer)
        return self.app(environ, start_response)

    def _apply_forwarded(self, environ: dict[str, Any], peer: str) -> None:
        header = environ.get("HTTP_X_FORWARDED_FOR")
        if header:
            client = peer
            for hop in reversed([h.strip() for h in header.split(",")]):
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    environ[FORWARDING_ERROR_KEY] = (
                        "X-Forwarded-For holds something that is not an IP address"
                    )
                    return
                client = hop
                if not address_in(hop, self.trusted):
                    break
            environ["REMOTE_ADDR"] = client
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
