"""Sending webhook deliveries over HTTP(S) to the allowed integration hosts only.

The endpoint's host is resolved once per attempt; every address is checked against
`webhooks.allowed_hosts` and the connection goes to the checked address (the host name is
kept for the Host header and TLS), so DNS answering differently a moment later changes
nothing. Redirects are never followed: a 3xx is an answer like any other non-2xx.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from appliance.config import WebhooksConfig
from appliance.errors import InvalidInput, Unavailable

MAX_URL_LENGTH = 2000
_ANSWER_BYTES = 65536

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


class AllowList:
    """`webhooks.allowed_hosts`: host names, and networks that addresses must be in."""

    def __init__(self, config: WebhooksConfig) -> None:
        self._config = config
        self._names: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in config.allowed_hosts:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._names.add(entry)

    def target(self, url: str) -> Target:
        """The parts of an endpoint URL this appliance may deliver to.

        :raises InvalidInput: saying what to change.
        """
        if len(url) > MAX_URL_LENGTH:
            raise InvalidInput(f"The URL is longer than {MAX_URL_LENGTH} characters.")
        parts = urlsplit(url.strip())
        schemes = ("https", "http") if self._config.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise InvalidInput("Webhook endpoints must be https:// URLs.")
        if parts.username or parts.password:
            raise InvalidInput("Put no user name or password in the URL: deliveries are signed instead.")
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise InvalidInput("The URL's port is not a number from 1 to 65535.") from exc
        if not host:
            raise InvalidInput("The URL names no host.")
        if parts.scheme == "https" and self._config.ca_file is None:
            raise InvalidInput(
                "https:// endpoints need webhooks.ca_file, the CA that their certificates chain to."
            )
        literal = _ip(host)
        # an unlisted name may still do, if it resolves into the networks (`addresses` checks)
        listed = host in self._names or (
            self._in_networks(literal) if literal is not None else bool(self._networks)
        )
        if not listed:
            raise InvalidInput(
                f"{host} is not an allowed integration host: ask IT to add it to webhooks.allowed_hosts."
            )
        return Target(
            parts.scheme, host, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        )

    def addresses(self, target: Target) -> list[str]:
        """The addresses `target` may be reached at now.

        :raises Unavailable: it does not resolve, or only to addresses outside the allowed networks.
        """
        literal = _ip(target.host)
        if literal is not None:
            resolved: list[IpAddress] = [literal]
        else:
            try:
                answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise Unavailable(
                    "the endpoint's host does not resolve", detail=f"{target.host}: {exc}"
                ) from exc
            resolved = [ipaddress.ip_address(answer[4][0]) for answer in answers]
        allowed = [
            address
            for address in resolved
            if self._in_networks(address) or (target.host in self._names and not self._networks)
        ]
        if not allowed:
            raise Unavailable(
                "the endpoint's host resolves outside the allowed networks",
                detail=f"{target.host} -> {', '.join(str(a) for a in resolved)}",
            )
        return list(dict.fromkeys(str(a) for a in allowed))

    def _in_networks(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)


class HttpTransport:
    """`WebhookTransport` over http.client, to the allowed hosts only."""

    def __init__(self, config: WebhooksConfig) -> None:
        self._config = config
        self._allowed = AllowList(config)
        self._tls: ssl.SSLContext | None = None
        """Made at the first https delivery: a CA file that went missing fails deliveries, not start-up."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            target = self._allowed.target(url)  # the allow-list may have shrunk since registration
        except InvalidInput as exc:
            raise Unavailable("the endpoint is no longer allowed", detail=exc.public) from exc
        address = self._allowed.addresses(target)[0]
        connection = self._connection(target, address)
        try:
            connection.request("POST", target.path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            answer.read(_ANSWER_BYTES)
            return answer.status
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(
                "the endpoint did not answer", detail=f"{target.host}:{target.port}: {exc}"
            ) from exc
        finally:
            connection.close()

    def _connection(self, target: Target, address: str) -> http.client.HTTPConnection:
        timeout = self._config.timeout_seconds
        if target.scheme == "https":
            return _PinnedHttps(target.host, target.port, address, timeout, self._tls_context())
        return _PinnedHttp(target.host, target.port, address, timeout)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ca_file = self._config.ca_file  # AllowList.target refuses https without one
            try:
                self._tls = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise Unavailable(
                    "webhooks.ca_file cannot be read",
                    detail=f"{ca_file}: {exc}; point webhooks.ca_file at the enterprise CA's PEM file",
                ) from exc
        return self._tls


class _PinnedHttp(http.client.HTTPConnection):
    """Connects to the checked `address`; `host` stays for the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHttps(http.client.HTTPSConnection):
    """As _PinnedHttp, with TLS to `host` (SNI and the certificate's name)."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls_context.wrap_socket(raw, server_hostname=self.host)


def _ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
