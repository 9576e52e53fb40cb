"""Who is asking and what they may see: login modes (trusted proxy headers, the demo's dev user) and the roles
the catalog gives a person's groups (a unit's owners and viewers, pool.yaml `portal` platform and finance)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pool_catalog import Catalog

from .errors import PortalError
from .oidc import OidcSettings, check_settings


@dataclass(frozen=True)
class Person:
    """A signed-in person: the name and groups the login mode vouches for."""

    name: str
    groups: frozenset[str]


@dataclass(frozen=True)
class Roles:
    """What a person may see, from the catalog: the units whose owners or viewers include one of their groups,
    and whether they are in the platform team or finance."""

    units: tuple[str, ...]
    owner_of: frozenset[str]
    platform: bool
    finance: bool

    def may_read_unit(self, unit: str) -> bool:
        """Members read their unit's pages; finance reads every unit's invoices."""
        return unit in self.units or self.finance

    def may_request_for(self, unit: str) -> bool:
        """Owners and viewers of the unit may ask; the platform decides."""
        return unit in self.units


def roles_of(person: Person, catalog: Catalog) -> Roles:
    """The person's roles in `catalog` (read per request, so a catalog change takes effect at once)."""
    units = tuple(u.id for u in catalog.units if person.groups & {*u.owners, *u.viewers})
    owner_of = frozenset(u.id for u in catalog.units if person.groups & set(u.owners))
    access = catalog.pool.portal
    platform = access is not None and bool(person.groups & set(access.platform_groups))
    finance = access is not None and bool(person.groups & set(access.finance_groups))
    return Roles(units, owner_of, platform, finance)


@dataclass(frozen=True)
class ProxyLogin:
    """An authenticating proxy in front: its user and groups headers are believed only from its addresses."""

    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"

    def person(self, client: str | None, headers: dict[str, str]) -> Person | None:
        """The person the proxy names, or None (no header, or the request did not come from a proxy address)."""
        if client is None or not self.trusted(client):
            return None
        name = headers.get(self.user_header.lower(), "").strip()
        if not name:
            return None
        groups = frozenset(g.strip() for g in headers.get(self.groups_header.lower(), "").split(",") if g.strip())
        return Person(name, groups)

    def trusted(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)


@dataclass(frozen=True)
class DevLogin:
    """The demo's login: everyone is this person. Every page says so in a banner."""

    person: Person


@dataclass(frozen=True)
class LoginSettings:
    """The login modes configured; at least one, or the portal refuses to start."""

    proxy: ProxyLogin | None = None
    dev: DevLogin | None = None
    oidc: OidcSettings | None = None


def parse_proxies(values: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """--trusted-proxy values (addresses or CIDR ranges) as networks; a bad one names the flag."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as e:
            raise PortalError(
                f"--trusted-proxy {value!r} is not an address or range: write e.g. 127.0.0.1 or 10.0.0.0/24"
            ) from e
    return tuple(networks)


def login_settings(
    *,
    dev_user: str | None,
    dev_groups: str | None,
    trusted_proxies: list[str],
    user_header: str,
    groups_header: str,
    oidc: OidcSettings | None = None,
) -> LoginSettings:
    """The login modes from the command line; none configured is refused with what to pass."""
    dev = None
    if dev_user is not None or dev_groups is not None:
        if not (dev_user or "").strip():
            raise PortalError("--dev-groups needs --dev-user NAME: the demo login signs everyone in as that person")
        groups = frozenset(g.strip() for g in (dev_groups or "").split(",") if g.strip())
        if not groups:
            raise PortalError("--dev-user needs --dev-groups g1,g2: the groups decide which pages the person sees")
        dev = DevLogin(Person(dev_user.strip(), groups))
    proxy = None
    if trusted_proxies:
        if not user_header.strip() or not groups_header.strip():
            raise PortalError("--user-header and --groups-header must name the headers the proxy sets")
        proxy = ProxyLogin(parse_proxies(trusted_proxies), user_header.strip(), groups_header.strip())
    modes = (("--dev-user", dev), ("--trusted-proxy", proxy), ("--oidc-issuer", oidc))
    configured = [flag for flag, mode in modes if mode]
    if len(configured) > 1:
        raise PortalError(f"{' and '.join(configured)} exclude each other: choose one way to sign people in")
    if not configured:
        raise PortalError(
            "no login configured: pass --oidc-issuer URL (with --oidc-client-id and --oidc-client-secret-file) for "
            "the company's single sign-on, --trusted-proxy ADDRESS behind an authenticating proxy, or "
            "--dev-user NAME --dev-groups g1,g2 for a demo on your own machine"
        )
    return LoginSettings(proxy=proxy, dev=dev, oidc=check_settings(oidc) if oidc else None)
