"""The SSRF guard of webhook URLs: only http(s) to public addresses, unless an allow-list names them.

A webhook URL is the one place where a tenant makes the service open a connection of its choosing, so
a URL whose host resolves to loopback, a private or link-local network, a reserved range or a cloud
metadata address would let a tenant probe our own network. The host is resolved and EVERY address
checked (a name with one public and one private address is refused), at submission and again before
each delivery attempt; the delivery then connects to an address this check returned, so a DNS answer
that changes between check and connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
"""Cloud instance metadata services (AWS, GCP and Azure share the first; AWS IPv6, Alibaba, ECS tasks)."""


class UrlRefused(ValueError):
    """The URL may not be called; the message says why (for the client)."""


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks exempt from the address rules (`NARRATE_WEBHOOK_ALLOW_HOSTS`)."""

    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, value: str) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in filter(None, (part.strip().lower() for part in value.split(","))):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.strip("[]"))
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: IPAddress) -> bool:
        return host in self.hosts or any(address in network for network in self.networks)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`) and what to name in Host and TLS (`host`)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def check_syntax(url: str) -> None:
    """The checks that need no network: scheme, host, port, no credentials, length."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL may not carry a user name or password")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise UrlRefused("the URL's port is not valid") from exc


def _forbidden(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for loopback, private, link-local, reserved, unspecified, shared (CGNAT) and
    # documentation ranges; multicast ranges may be "global" and are refused too.
    return not address.is_global or address.is_multicast or address in METADATA_ADDRESSES


def check_url(url: str, allow: AllowList) -> Target:
    """Resolve the URL's host and refuse it unless every address is public or allow-listed."""
    check_syntax(url)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"the host {host!r} does not resolve") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlRefused(f"the host {host!r} does not resolve")
    for address in addresses:
        if _forbidden(address) and not allow.permits(host, address):
            raise UrlRefused(
                f"the host {host!r} resolves to {address}, a loopback, private, link-local, reserved or "
                "metadata address; webhooks go to public addresses only"
            )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, host, port, path, str(addresses[0]))
