"""The catalog's schema: pool.yaml, business-units/<id>.yaml and rates.yaml as pydantic models.

Field-level rules (types, DNS names, non-negative quantities) live here; rules that need the
whole catalog (capacity, cross references, budgets) live in `checks.py`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import Finding
from .quantities import MAX_QUANTITY, Bytes, Cores, parse
from .resources import HOURS_PER_MONTH as HOURS_PER_MONTH
from .resources import Resource as Resource
from .resources import ResourceSpec, focus_service_error, names, spec_of
from .time_zones import UTC_NAME, check_zone

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # optional DNS prefix
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 subdomain: use lower-case letters, digits, '-' and '.'")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        _label_key(key)
        if not _LABEL_VALUE.match(text):
            raise ValueError(
                f"label value {text!r} (key {key!r}) is not valid: at most 63 letters, digits, '-', '_', '.'"
            )
    return value


def _label_key(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if not _LABEL_KEY.match(value) or len(name) > 63 or len(prefix) > 253:
        raise ValueError(
            f"{value!r} is not a valid Kubernetes label key (taint keys follow the same rules): an optional DNS "
            "prefix and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or "
            "digit (e.g. pool.example.com/gpu)"
        )
    return value


def _label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(f"{value!r} is not a valid label or taint value: at most 63 letters, digits, '-', '_', '.'")
    return value


def _group(value: str) -> str:
    """A Kubernetes group named in a RoleBinding subject: not empty, no surrounding or control characters."""
    if not value.strip():
        raise ValueError("a group name is empty; name the group of your identity provider, e.g. sales-admins")
    if value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"group {value!r} has leading/trailing spaces or control characters; write the name alone")
    return value


MAX_MONEY = Decimal("1e15")
"""Budgets and prices above this are typing errors, and would not survive rounding to the cent."""


def _money(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite amount; write a number such as 1200.50")
    if value > MAX_MONEY:
        raise ValueError(f"{value} is larger than {MAX_MONEY:,.0f}; check the number of digits")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=True), AfterValidator(_money)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Group = Annotated[str, AfterValidator(_group)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- pool.yaml


class Taint(_Model):
    key: LabelKey = Field(..., description="Taint key, e.g. dedicated.pool/edge-lab.")
    value: LabelValue = Field("", description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "NoSchedule", description="What the scheduler does with pods that do not tolerate the taint."
    )


class Node(_Model):
    name: DnsSubdomain = Field(..., description="Kubernetes node name of an existing server.")
    cpu: Cores = Field(..., description="Allocatable CPU cores of the server.")
    memory: Bytes = Field(..., description="Allocatable memory of the server (e.g. 512Gi).")
    gpu: int = Field(0, ge=0, description="NVIDIA GPUs in the server.")


class Overcommit(_Model):
    """How far quotas may exceed physical capacity, per resource (1.0 = no overcommit)."""

    cpu: float = Field(1.0, ge=1.0, le=10.0, description="Sum of CPU quotas may reach capacity × this.")
    memory: float = Field(1.0, ge=1.0, le=10.0, description="Sum of memory quotas may reach capacity × this.")
    gpu: float = Field(1.0, ge=1.0, le=10.0, description="Sum of GPU quotas may reach capacity × this.")


class NodePool(_Model):
    name: DnsLabel = Field(..., description="Node pool name; namespaces pin to it.")
    description: str = Field("", description="What the servers are for.")
    labels: Labels = Field(default_factory=dict, description="Extra node labels applied to every server.")
    taints: list[Taint] = Field(default_factory=list, description="Taints for dedicated hardware.")
    overcommit: Overcommit | None = Field(None, description="Overrides the cluster's overcommit ratios.")
    nodes: list[Node] = Field(..., min_length=1, description="The servers in this pool.")

    @property
    def cpu(self) -> Decimal:
        return sum((n.cpu for n in self.nodes), Decimal(0))

    @property
    def memory(self) -> Decimal:
        return sum((n.memory for n in self.nodes), Decimal(0))

    @property
    def gpu(self) -> int:
        return sum(n.gpu for n in self.nodes)


class StorageTier(_Model):
    name: DnsLabel = Field(..., description="Tier name: hot, cold, archive …")
    storage_class: DnsSubdomain | None = Field(None, description="StorageClass name; defaults to 'pool-<tier>'.")
    provisioner: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_./]{0,61}[A-Za-z0-9])?$",
        description="CSI provisioner, e.g. rbd.csi.ceph.com (a CSI driver name: at most 63 characters).",
    )
    parameters: dict[str, str] = Field(default_factory=dict, description="StorageClass parameters.")
    reclaim_policy: Literal["Delete", "Retain"] = Field("Delete", description="StorageClass reclaimPolicy.")
    volume_binding_mode: Literal["Immediate", "WaitForFirstConsumer"] = Field(
        "WaitForFirstConsumer", description="StorageClass volumeBindingMode."
    )
    allow_volume_expansion: bool = Field(True, description="Whether PVCs may grow.")
    capacity: Bytes = Field(..., description="Usable capacity of the tier (e.g. 200Ti).")

    @property
    def class_name(self) -> str:
        return self.storage_class or f"pool-{self.name}"


def _address_range(value: str) -> str:
    try:
        parse_address_range(value)
    except ValueError as e:
        raise ValueError(
            f"{value!r} is not an address range: write a CIDR (192.0.2.0/28) or 'first-last' (192.0.2.10-192.0.2.20)"
        ) from e
    return value


def parse_address_range(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Return (first, last) address of a CIDR or 'first-last' range."""
    if "-" in text:
        first_text, last_text = (part.strip() for part in text.split("-", 1))
        first, last = ipaddress.ip_address(first_text), ipaddress.ip_address(last_text)
        if first.version != last.version or int(last) < int(first):
            raise ValueError(text)
        return first, last
    network = ipaddress.ip_network(text.strip(), strict=True)
    return network[0], network[-1]


def range_within(text: str, ranges: Iterable[str]) -> bool:
    """Whether the address range `text` lies whole inside one of `ranges` (each a CIDR or 'first-last' range).

    The one containment test: the catalog checks, `pool capacity` and the MetalLB address pools all ask it.
    """
    first, last = parse_address_range(text)
    for outer in ranges:
        low, high = parse_address_range(outer)
        if first.version == low.version and int(low) <= int(first) and int(last) <= int(high):
            return True
    return False


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a network in CIDR notation, e.g. 198.51.100.0/24 or 2001:db8::/64") from e
    if value.strip() in ("0.0.0.0/0", "::/0"):
        raise ValueError(f"{value!r} is every address: egress is denied by default, list the networks a unit needs")
    return value.strip()


Cidr = Annotated[str, AfterValidator(_cidr)]
PodSecurityLevel = Literal["baseline", "restricted"]
"""Pod Security Standard a namespace enforces; `privileged` is not offered: it would let pods reach the host."""


AddressRange = Annotated[str, AfterValidator(_address_range)]


class Network(_Model):
    ingress_namespace: DnsLabel = Field(
        "ingress-nginx", description="Namespace of the ingress controller allowed into unit namespaces."
    )
    dns_namespace: DnsLabel = Field("kube-system", description="Namespace of cluster DNS (for egress rules).")
    dns_pod_labels: Labels = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}, description="Labels of the DNS pods."
    )
    load_balancer_ranges: list[AddressRange] = Field(
        default_factory=list,
        description="Address ranges MetalLB may hand out; units get slices of them in their own files.",
    )
    address_pools: bool = Field(
        True,
        description="Declare MetalLB IPAddressPools for the units' addresses (needs MetalLB installed); "
        "false turns them off.",
    )
    egress_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="Networks outside the cluster every unit namespace may call (proxy, registry); "
        "all other egress is denied.",
    )


class Cluster(_Model):
    name: DnsLabel = Field(..., description="Cluster name; also the `cluster` column of chargeback.")
    kubernetes_version: str = Field("1.31", description="Kubernetes minor version manifests must validate for.")
    overcommit: Overcommit = Field(default_factory=Overcommit, description="Default overcommit ratios.")
    node_pools: list[NodePool] = Field(..., min_length=1, description="Groups of existing servers.")
    storage_tiers: list[StorageTier] = Field(..., min_length=1, description="Storage tiers (hot/cold/archive).")
    network: Network = Field(default_factory=Network, description="Network settings.")
    pod_security: PodSecurityLevel = Field(
        "baseline",
        description="Pod Security Standard enforced in unit namespaces (warnings and audit use `restricted`).",
    )

    @field_validator("kubernetes_version")
    @classmethod
    def _minor_version(cls, value: str) -> str:
        if not re.fullmatch(r"1\.\d{1,2}", value):
            raise ValueError(f"{value!r} is not a Kubernetes minor version such as 1.31")
        return value

    def node_pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)

    def tier(self, name: str) -> StorageTier | None:
        return next((t for t in self.storage_tiers if t.name == name), None)

    def overcommit_of(self, pool: NodePool) -> Overcommit:
        return pool.overcommit or self.overcommit


# ------------------------------------------------------------ alert contacts


_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_RESEND_MINUTES = 30
"""The group's rule: the same alert never reaches a contact twice within 30 minutes."""


def duration_seconds(text: str) -> int:
    """'30m' → 1800; one number and one of s, m, h, d (the subset of Prometheus durations people write)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: write e.g. 30s, 30m, 4h or 1d")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


def _duration(value: str) -> str:
    duration_seconds(value)
    return value.strip()


_HOST = re.compile(r"^([A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.?$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SECRET_PARAMETER = re.compile(r"token|secret|passw|pwd|key|sign|auth|credential|session|sig$", re.IGNORECASE)
ROBOT_HOSTS = {
    "oapi.dingtalk.com": "DingTalk",
    "qyapi.weixin.qq.com": "WeCom",
    "open.feishu.cn": "Feishu",
    "open.larksuite.com": "Lark",
    "hooks.slack.com": "Slack",
}
"""Hosts whose webhook URL is itself the robot's secret (a token in the query or the path)."""
SECRET_FILE_HINT = (
    "keep the secret in a file only Alertmanager reads and name it on the contact: `credentials_file: "
    "/etc/alertmanager/secrets/<name>` (sent as `Authorization: Bearer <file content>`), or let the webhook bridge "
    "hold the robot's token"
)


def _first_blank(text: str) -> tuple[int, str] | None:
    """Position and name of the first whitespace or control character (Go's net/url refuses the controls)."""
    for index, char in enumerate(text):
        if ord(char) < 32 or ord(char) == 127 or char.isspace():
            names = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", " ": "a space"}
            return index, names.get(char, f"the character U+{ord(char):04X}")
    return None


def redacted(url: str) -> str:
    """The URL for messages: no user or password, every query value replaced by ***."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(a URL that does not parse)"
    query = "&".join(f"{pair.partition('=')[0]}=***" for pair in parts.query.split("&") if pair)
    return f"{parts.scheme}://{host}{parts.path}" + (f"?{query}" if query else "")


def _http_url(value: str) -> str:
    """A webhook URL as Alertmanager's configuration reads it, and without credentials.

    Alertmanager parses `url` with Go's net/url.Parse and requires scheme http or https and a host
    (prometheus/alertmanager config/config.go, parseURL); a URL it refuses makes the whole alertmanager.yml
    fail to load, every unit's routes with it. Refused here as Go refuses them: control characters, a bad
    %-escape, a space or other character in the host. Stricter than Go on purpose: any whitespace (Go takes a
    space in the path; write %20), a port above 65535 (Go parses it, the send fails). Credentials are refused:
    the catalog is kept in git and the rendered file is read by whoever deploys it."""
    from urllib.parse import parse_qsl, urlsplit

    blank = _first_blank(value)
    if blank is not None:
        index, what = blank
        raise ValueError(
            f"the URL has {what} at character {index + 1}: Alertmanager would refuse it, and with it the whole "
            "alertmanager.yml of every unit; remove it (write a space inside a path as %20)"
        )
    if _BAD_ESCAPE.search(value):
        raise ValueError(f"{redacted(value)!r} has a % not followed by two hex digits; write a literal % as %25")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{redacted(value)!r} is not a URL Alertmanager can post to ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redacted(value)!r} is not an http(s) URL with a host")
    host = parts.netloc.rpartition("@")[2]
    host = host[: -len(f":{port}")] if port is not None else host.removesuffix(":")
    if not (_HOST.match(host) or _is_ip_literal(host)):
        raise ValueError(
            f"host {host!r} of the URL is not a DNS name or an IP address (letters, digits, '-', '_' and '.'; "
            "IPv6 in brackets)"
        )
    if "@" in parts.netloc:
        raise ValueError(
            f"the URL {redacted(value)!r} carries a user name or password before the host: the catalog never holds "
            f"a credential; {SECRET_FILE_HINT}"
        )
    secrets = sorted(
        {name for name, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAMETER.search(name)}
    )
    if secrets:
        raise ValueError(
            f"the URL {redacted(value)!r} carries a credential in its query ({', '.join(secrets)}): the catalog never "
            f"holds a credential; {SECRET_FILE_HINT}"
        )
    robot = ROBOT_HOSTS.get(parts.hostname.rstrip("."))
    if robot is not None:
        raise ValueError(
            f"{parts.hostname} is the {robot} robot's own address, whose URL is its token: the catalog never holds a "
            "credential; point the contact at a webhook bridge (e.g. prometheus-webhook-dingtalk) that holds the token"
        )
    return value


def _is_ip_literal(host: str) -> bool:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.version == 4 or host.startswith("[")


def _secret_file(value: str) -> str:
    """A file Alertmanager reads a secret from: an absolute path, one line of YAML without blanks."""
    blank = _first_blank(value)
    if blank is not None or not value.startswith("/") or "/../" in f"{value}/":
        raise ValueError(
            f"{value!r} is not an absolute file path without spaces or '..' (e.g. /etc/alertmanager/secrets/bridge)"
        )
    return value


Duration = Annotated[str, AfterValidator(_duration)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
SecretFile = Annotated[str, AfterValidator(_secret_file)]
INLINE_SECRETS = ("password", "token", "secret", "credentials", "bearer_token", "auth_password", "auth_secret")
"""Keys someone might write to put a secret into a contact or the SMTP server; each is refused with the fix."""


def _no_inline_secret(data: Any, fix: str) -> Any:
    if isinstance(data, dict):
        for key in data:
            if str(key) in INLINE_SECRETS or str(key) == "http_config":
                raise ValueError(f"`{key}` would put a secret into the catalog, which never holds one; {fix}")
            if str(key) == "url_file":
                raise ValueError(
                    "`url_file` is not read by the Alertmanager this config is checked against (0.25 refuses the "
                    "field, and with it the whole file); keep the URL without its secret in `url` and the secret in "
                    "`credentials_file: /etc/alertmanager/secrets/<name>`"
                )
    return data


class ContactKind(StrEnum):
    """Where an alert can be sent. WeCom, DingTalk and Feishu are reached through their webhook
    receivers (a bridge such as prometheus-webhook-dingtalk that turns Alertmanager's webhook into
    the robot's message format), so the catalog holds the bridge's URL, never a robot token."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    FEISHU = "feishu"


class Contact(_Model):
    """One destination of a unit's (or the platform team's) alerts."""

    kind: ContactKind = Field(..., description="email, webhook, wecom, dingtalk or feishu.")
    to: str | None = Field(None, description="email: the address alerts are mailed to.")
    url: HttpUrl | None = Field(
        None, description="webhook, wecom, dingtalk, feishu: the URL Alertmanager posts to (the bridge's URL)."
    )
    credentials_file: SecretFile | None = Field(
        None,
        description="webhook, wecom, dingtalk, feishu: file on the Alertmanager host holding the bearer token the "
        "receiver expects (Alertmanager's http_config.authorization.credentials_file); the catalog names the file, "
        "never the token.",
    )
    send_resolved: bool = Field(True, description="Also send a message when the alert resolves.")

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: Any) -> Any:
        return _no_inline_secret(data, SECRET_FILE_HINT)

    @model_validator(mode="after")
    def _target_of_kind(self) -> Contact:
        if self.kind is ContactKind.EMAIL:
            if self.to is None:
                raise ValueError("an email contact needs `to: someone@example.com`")
            if self.credentials_file is not None:
                raise ValueError("an email contact takes no credentials_file; SMTP login is alerting.email's")
            if not _EMAIL.fullmatch(self.to):
                raise ValueError(f"to {self.to!r} is not one e-mail address (write one contact per address)")
            if self.url is not None:
                raise ValueError("an email contact takes `to`, not `url`")
        else:
            if self.url is None:
                raise ValueError(f"a {self.kind.value} contact needs `url:` (the webhook receiver's address)")
            if self.to is not None:
                raise ValueError(f"a {self.kind.value} contact takes `url`, not `to`")
        return self


class UnitAlerts(_Model):
    """business-units/<id>.yaml `alerts`: who at the front line receives the unit's alerts."""

    contacts: list[Contact] = Field(..., min_length=1, description="Where the unit's alerts go.")


class NorthStar(_Model):
    """The business volume a unit's cost is measured against (orders, active users …)."""

    name: str = Field(..., min_length=1, description="What is counted, e.g. orders or monthly active users.")
    unit: str = Field(..., min_length=1, description="One counted thing, singular, e.g. order or active user.")
    query: str = Field(
        ...,
        min_length=1,
        description="PromQL giving the period's volume as one number at the period end; `$__range` stands "
        "for the period (e.g. sum(increase(shop_orders_total[$__range]))).",
    )

    @field_validator("query")
    @classmethod
    def _uses_range(cls, value: str) -> str:
        if "$__range" not in value:
            raise ValueError(
                "the query does not use $__range, so it cannot cover the billed period: write e.g. "
                "sum(increase(orders_total[$__range])) or avg_over_time(sum(active_users)[$__range:1h])"
            )
        return value


class EmailServer(_Model):
    smarthost: str = Field(..., pattern=r"^[^:\s]+:\d{1,5}$", description="SMTP host:port Alertmanager mails through.")
    sender: str = Field(..., description="From: address of alert mails.")
    require_tls: bool = Field(True, description="Require STARTTLS.")
    auth_username: str | None = Field(
        None, min_length=1, pattern=r"^\S+$", description="SMTP login (Alertmanager's smtp_auth_username)."
    )
    auth_password_file: SecretFile | None = Field(
        None,
        description="File on the Alertmanager host holding the SMTP password (smtp_auth_password_file); the "
        "catalog names the file, never the password.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: Any) -> Any:
        return _no_inline_secret(
            data, "write `auth_password_file: /etc/alertmanager/secrets/smtp` and keep the password in that file"
        )

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _login_pair(self) -> EmailServer:
        if (self.auth_username is None) != (self.auth_password_file is None):
            raise ValueError("SMTP login needs both auth_username and auth_password_file, or neither")
        return self


class CostAnomaly(_Model):
    factor: float = Field(
        2.0,
        gt=1,
        le=100,
        description="Alert when a namespace's last-day cost exceeds its trailing daily average × factor.",
    )
    baseline_days: int = Field(7, ge=1, le=60, description="Days of the trailing baseline (before the last day).")
    min_daily_cost: NonNegative = Field(
        Decimal(0), description="Ignore namespaces whose last-day cost is below this (in the rate card's currency)."
    )


class Alerting(_Model):
    """pool.yaml `alerting`: the platform route and how often an alert may be sent."""

    platform_contacts: list[Contact] = Field(
        ...,
        min_length=1,
        description="Default route: unallocated namespaces, coverage gaps, the exporter's health, and units "
        "without contacts.",
    )
    resend_after: Duration = Field(
        "30m",
        description="group_interval: the soonest a group is notified again (new or resolved alerts); at least 30m.",
    )
    repeat_interval: Duration = Field(
        "4h", description="How long a still-firing alert waits before it is sent again; at least resend_after."
    )
    group_wait: Duration = Field("30s", description="Wait for more alerts of a new group before the first message.")
    email: EmailServer | None = Field(None, description="SMTP server; required when any contact is an email.")
    cost_anomaly: CostAnomaly = Field(default_factory=CostAnomaly, description="The cost-anomaly alert.")
    coverage_below: float = Field(
        0.95, gt=0, le=1, description="Alert when a cluster's scrapes cover less than this share of the last day."
    )

    @model_validator(mode="after")
    def _never_twice_in_30_minutes(self) -> Alerting:
        if duration_seconds(self.resend_after) < MIN_RESEND_MINUTES * 60:
            raise ValueError(
                f"resend_after {self.resend_after} is below {MIN_RESEND_MINUTES}m: the same alert must not reach "
                f"anyone twice within {MIN_RESEND_MINUTES} minutes"
            )
        if duration_seconds(self.repeat_interval) < duration_seconds(self.resend_after):
            raise ValueError(f"repeat_interval {self.repeat_interval} is below resend_after {self.resend_after}")
        return self


class Billing(_Model):
    """How the group's books are kept: the zone whose calendar months and days are billed."""

    time_zone: str = Field(
        UTC_NAME,
        description="IANA time zone whose months and days are billed (e.g. Asia/Shanghai): `--period 2026-10` is "
        "October there, from its local midnight on the 1st; its offset must be whole hours (hours are UTC hours).",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_whole_hour_zone(cls, value: str) -> str:
        return check_zone(value)


class PortalAccess(_Model):
    """pool.yaml `portal`: the groups of the two teams the portal serves besides the business units (whose
    members are their files' owners and viewers)."""

    platform_groups: list[Group] = Field(
        ..., min_length=1, description="Groups of the platform team: approve or decline namespace requests."
    )
    finance_groups: list[Group] = Field(
        ..., min_length=1, description="Groups of finance: month status, close a month, every unit's invoices."
    )


class Pool(_Model):
    """pool.yaml: what the platform team owns."""

    clusters: list[Cluster] = Field(..., min_length=1, description="Clusters the servers are pooled into.")
    alerting: Alerting | None = Field(None, description="Alert routing: the platform route and resend policy.")
    billing: Billing = Field(default_factory=Billing, description="Billing settings: the time zone of the months.")
    allowed_groups: list[Group] = Field(
        default_factory=list,
        description="Exceptions to the group rules of unit files: `system:` groups units may still name as owners "
        "or viewers (e.g. system:serviceaccounts:ci). Listed here, reviewed by the platform team.",
    )
    portal: PortalAccess | None = Field(
        None, description="Who the portal (`pool-portal`) treats as the platform team and as finance."
    )

    def cluster(self, name: str) -> Cluster | None:
        return next((c for c in self.clusters if c.name == name), None)


# ---------------------------------------------------- business-units/<id>.yaml


MAX_COUNT = int(MAX_QUANTITY)
"""Largest count a ResourceQuota holds (a Kubernetes quantity is an int64): more would pass here and fail
at the API server."""


class Quota(_Model):
    """What a namespace may allocate; becomes its ResourceQuota."""

    cpu: Cores = Field(..., description="requests.cpu: cores the namespace may request.")
    memory: Bytes = Field(..., description="requests.memory.")
    limits_cpu: Cores | None = Field(None, description="limits.cpu; defaults to twice `cpu`.")
    limits_memory: Bytes | None = Field(None, description="limits.memory; defaults to `memory`.")
    storage: dict[DnsLabel, Bytes] = Field(
        default_factory=dict, description="Storage per tier (hot: 500Gi); tiers not listed get 0."
    )
    gpu: int = Field(0, ge=0, le=MAX_COUNT, description="requests.nvidia.com/gpu.")
    load_balancers: int = Field(
        0,
        ge=0,
        le=MAX_COUNT,
        description="services.loadbalancers: LoadBalancer Services; 0 refuses the type in the namespace.",
    )
    node_ports: int = Field(
        0,
        ge=0,
        le=65535,
        description="services.nodeports: node ports the namespace's Services may open (a NodePort Service takes "
        "one per port, so does a LoadBalancer Service unless it sets allocateLoadBalancerNodePorts: false); "
        "0 refuses NodePort Services.",
    )
    pods: int = Field(100, ge=1, le=MAX_COUNT, description="Maximum number of pods.")
    _registered: dict[str, Decimal] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _registered_amounts(cls, data: Any, handler: Callable[[Any], Quota]) -> Quota:
        quota, found = _with_registered(cls, data, handler, parse)
        quota._registered.update(found)
        return quota

    def amount(self, spec: ResourceSpec) -> Decimal:
        """The allocation of `spec`'s resource in its catalog unit (bytes, cores, count); storage: the total.

        A registered resource's allocation is written under its name (`gpu_memory: 16Gi`)."""
        if spec.quota is None:
            return Decimal(0)
        if spec.quota.field in type(self).model_fields:
            value = getattr(self, spec.quota.field)
            return sum(value.values(), Decimal(0)) if isinstance(value, dict) else Decimal(value)
        return self._registered.get(spec.name, Decimal(0))

    @property
    def cpu_limit(self) -> Decimal:
        return self.limits_cpu if self.limits_cpu is not None else self.cpu * 2

    @property
    def memory_limit(self) -> Decimal:
        return self.limits_memory if self.limits_memory is not None else self.memory

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Quota:
        if self.cpu_limit < self.cpu:
            raise ValueError("limits_cpu is below cpu: limits must be at least the requests")
        if self.memory_limit < self.memory:
            raise ValueError("limits_memory is below memory: limits must be at least the requests")
        return self


class ContainerDefaults(_Model):
    """LimitRange defaults for containers that state none."""

    default_cpu: Cores = Field(Decimal("0.5"), description="Default CPU limit per container.")
    default_memory: Bytes = Field(Decimal(512 * 2**20), description="Default memory limit per container.")
    default_request_cpu: Cores = Field(Decimal("0.1"), description="Default CPU request per container.")
    default_request_memory: Bytes = Field(Decimal(128 * 2**20), description="Default memory request.")
    max_cpu: Cores | None = Field(None, description="Largest CPU limit one container may set.")
    max_memory: Bytes | None = Field(None, description="Largest memory limit one container may set.")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ContainerDefaults:
        if self.default_request_cpu > self.default_cpu:
            raise ValueError("default_request_cpu is above default_cpu")
        if self.default_request_memory > self.default_memory:
            raise ValueError("default_request_memory is above default_memory")
        if self.max_cpu is not None and self.default_cpu > self.max_cpu:
            raise ValueError("default_cpu is above max_cpu")
        if self.max_memory is not None and self.default_memory > self.max_memory:
            raise ValueError("default_memory is above max_memory")
        return self


def _ports(ports: list[int]) -> list[int]:
    for port in ports:
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1-65535")
    if len(set(ports)) != len(ports):
        raise ValueError(f"ports {ports} list a port twice; list each once")
    return ports


Ports = Annotated[list[int], Field(min_length=1), AfterValidator(_ports)]
"""TCP ports a NetworkPolicy opens (at least one: a rule without ports opens every port)."""


class Capability(_Model):
    """A service a namespace offers to other units (e.g. the credit-scoring API)."""

    name: DnsLabel = Field(..., description="Capability name, unique across the catalog.")
    description: str = Field("", description="What it does.")
    ports: Ports = Field(..., description="TCP ports consumers may reach.")
    pod_selector: Labels = Field(
        ...,
        min_length=1,
        description="Labels of the pods serving it (at least one: an empty selector would open every pod).",
    )


class Ingress(_Model):
    """What the cluster's shared ingress controller may reach in a namespace."""

    ports: Ports = Field(
        ...,
        description="TCP ports of the namespace's pods the ingress controller may connect to: the container ports "
        "its Ingresses' Services forward to (their targetPort), not the Services' own ports.",
    )


class Namespace(_Model):
    name: DnsLabel = Field(..., description="Kubernetes namespace name, unique in its cluster.")
    cluster: DnsLabel | None = Field(None, description="Cluster; defaults to the only cluster in pool.yaml.")
    node_pool: DnsLabel = Field(..., description="Node pool the namespace's pods are pinned to.")
    purpose: str = Field("", description="What runs here.")
    quota: Quota = Field(..., description="The namespace's ResourceQuota.")
    container_defaults: ContainerDefaults = Field(default_factory=ContainerDefaults, description="LimitRange defaults.")
    exposes: list[Capability] = Field(default_factory=list, description="Capabilities served from here.")
    consumes: list[DnsLabel] = Field(
        default_factory=list, description="Capabilities of other units this namespace calls."
    )
    egress_cidrs: list[Cidr] = Field(
        default_factory=list, description="Further networks outside the cluster this namespace may call."
    )
    pod_security: PodSecurityLevel | None = Field(None, description="Overrides the cluster's pod_security.")
    ingress: Ingress | None = Field(
        None,
        description="Pod ports the shared ingress controller may reach (e.g. {ports: [8080]}); without it the "
        "controller reaches no pod of the namespace.",
    )


class Budget(_Model):
    monthly: NonNegative = Field(..., description="Monthly budget in the rate card's currency.")
    alert_at: float = Field(0.9, gt=0, le=2, description="Share of the budget at which to alert.")


class BusinessUnit(_Model):
    """business-units/<id>.yaml: what one unit owns."""

    id: DnsLabel = Field(..., description="Unit id; must equal the file name without .yaml.")
    display_name: str = Field(..., min_length=1, description="Name shown on invoices (any script).")
    cost_center: str = Field(..., min_length=1, description="Finance cost center, e.g. CC-4100.")
    owners: list[Group] = Field(
        ..., min_length=1, description="Groups bound to the unit-owner role (never `system:` groups)."
    )
    viewers: list[Group] = Field(
        default_factory=list, description="Groups bound to the `view` role (never `system:` groups)."
    )
    budget: Budget = Field(..., description="Monthly budget.")
    load_balancer_addresses: list[AddressRange] = Field(
        default_factory=list, description="The unit's slice of the pool's load-balancer ranges."
    )
    namespaces: list[Namespace] = Field(..., min_length=1, description="Namespaces the unit runs.")
    alerts: UnitAlerts | None = Field(None, description="Where the unit's alerts go; without it, to the platform.")
    north_star: NorthStar | None = Field(None, description="Business metric the unit's cost is measured against.")
    retire: Literal["retain", "delete"] | None = Field(
        None,
        description="Set when the unit is being retired: its namespaces lose `protect`, and once the unit file "
        "is removed they are kept in the cluster (retain) or deleted with everything in them (delete).",
    )

    @field_validator("cost_center")
    @classmethod
    def _cost_center_label(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value) or len(value) > 63:
            raise ValueError(f"{value!r} cannot be a Kubernetes label value: use letters, digits, '-', '_' and '.'")
        return value


# ---------------------------------------------------------------- rates.yaml


class Price(_Model):
    price: NonNegative = Field(..., description="Price per `unit` in the rate card's currency.")
    unit: str = Field(..., description="Unit of the price, e.g. core-hour or GiB-month (730 h).")


class RateVersion(_Model):
    effective_from: dt.datetime = Field(
        ..., description="UTC start of validity (date or date-time); applies from that hour on."
    )
    cpu: Price = Field(..., description="Price of CPU.")
    memory: Price = Field(..., description="Price of memory.")
    gpu: Price = Field(..., description="Price of GPUs.")
    egress: Price = Field(..., description="Price of network egress.")
    load_balancer: Price = Field(..., description="Price of a load-balancer address.")
    storage: dict[DnsLabel, Price] = Field(..., min_length=1, description="Price per storage tier.")
    _registered: dict[str, Price] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _registered_prices(cls, data: Any, handler: Callable[[Any], RateVersion]) -> RateVersion:
        version, found = _with_registered(cls, data, handler, Price.model_validate)
        version._registered.update(found)
        return version

    @field_validator("effective_from")
    @classmethod
    def _utc_hour(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        if value.minute or value.second or value.microsecond:
            raise ValueError(f"{value.isoformat()} is not on the hour; prices change at whole hours")
        return value

    @model_validator(mode="after")
    def _known_units(self) -> RateVersion:
        for name, price in self.prices().items():
            _check_unit(spec_of(name), price.unit)
        for price in self.storage.values():
            _check_unit(spec_of(Resource.STORAGE), price.unit)
        return self

    def prices(self) -> dict[str, Price]:
        """Price per resource priced as a whole (every resource but the per-tier storage), by name."""
        return {**{name: getattr(self, name) for name in _FIXED_PRICES}, **self._registered}

    def price_of(self, resource: str, tier: str | None = None) -> Price | None:
        if spec_of(resource).per_tier:
            return self.storage.get(tier or "")
        return self.prices().get(str(resource))


_FIXED_PRICES = ("cpu", "memory", "gpu", "egress", "load_balancer")
"""Resources with a field of their own in RateVersion; a registered resource's price is an extra key."""


def _with_registered(
    model: type[BaseModel], data: Any, handler: Callable[[Any], Any], convert: Callable[[Any], Any]
) -> tuple[Any, dict[str, Any]]:
    """Validate `data` without the keys of registered resources (which have no field of their own), and
    return those keys' values through `convert`.

    Misspelt keys still fail as unknown fields, with their line; a registered resource's key is taken aside."""
    if not isinstance(data, dict):
        return handler(data), {}
    found = {k: v for k, v in data.items() if k not in model.model_fields and k in names()}
    validated = handler({k: v for k, v in data.items() if k not in found})
    converted = {}
    for name, value in found.items():
        try:
            converted[name] = convert(value)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in (name, *first["loc"]))
            raise ValueError(f"{where}: {first['msg']}") from None
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    return validated, converted


def _check_unit(spec: ResourceSpec, unit: str) -> None:
    if unit not in spec.price_units:
        raise ValueError(f"unit {unit!r} is not a {spec.name} unit; use one of {', '.join(spec.price_units)}")


class SharedSplit(StrEnum):
    PROPORTIONAL = "proportional"
    EVEN = "even"
    NONE = "none"


class SharedNamespace(_Model):
    namespace: DnsLabel = Field(..., description="Namespace whose cost is shared (e.g. ingress-nginx).")
    cluster: DnsLabel | None = Field(None, description="Cluster; defaults to every cluster.")
    split: SharedSplit = Field(
        SharedSplit.PROPORTIONAL,
        description="proportional to each unit's own cost, even across units, or none (stays unallocated).",
    )
    among: list[DnsLabel] = Field(default_factory=list, description="Units that share it; empty = all.")


class IdlePolicy(_Model):
    utilization_threshold: float = Field(
        0.3, gt=0, lt=1, description="Flag allocations whose average use is below this share."
    )
    headroom: float = Field(
        0.2, ge=0, le=2, description="Recommended allocation = max(peak use, peak requests) × (1 + headroom)."
    )
    min_hours: int = Field(24, ge=1, description="Ignore allocations that existed for fewer hours.")
    min_history_hours: int = Field(
        168,
        ge=1,
        le=744,
        description="Give no right-size advice on a namespace measured for fewer hours than this in the period "
        "(a week sees a weekly batch); its idle allocations are still listed.",
    )
    alert_after_days: int = Field(3, ge=1, le=31, description="Alert when an allocation stays idle this many days.")


class BillingMode(StrEnum):
    USAGE = "usage"
    REQUEST = "request"
    MAX = "max"


class Issuer(_Model):
    name: str = Field(..., description="Who issues the invoices (the platform team's legal entity).")
    address: str = Field("", description="Postal address printed on invoices.")
    contact: str = Field("", description="Contact for invoice questions.")


# -------------------------------------------------- rates.yaml: capability calls


class CallMethod(StrEnum):
    """How calls to a capability are billed."""

    PER_CALL = "per_call"
    COST_RECOVERY = "cost_recovery"
    NONE = "none"


_PROMQL_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PROMQL_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _promql_label(value: str) -> str:
    if not _PROMQL_LABEL.match(value) or value == "__name__":
        raise ValueError(f"{value!r} is not a Prometheus label name (letters, digits and _, not first a digit)")
    return value


def _promql_metric(value: str) -> str:
    if not _PROMQL_METRIC.match(value):
        raise ValueError(f"{value!r} is not a Prometheus metric name (letters, digits, _ and :)")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"{value!r} is not a regular expression ({e}); write e.g. 5..") from e
    return value


PromLabel = Annotated[str, AfterValidator(_promql_label)]


class CallCounting(_Model):
    """The metric contract of capability calls: which counter counts them and which labels say who called what.

    The defaults read Istio's `istio_requests_total` as its proxies export it (label set in istio/proxy
    testdata/metric/server_request_total.yaml.tmpl): with sidecars on both ends every request is reported
    twice, `reporter="source"` by the client's proxy and `reporter="destination"` by the server's, so only
    one reporter is counted. The server side is the default because it also sees callers without a
    sidecar (their `source_workload_namespace` is then "unknown", reported as an unknown caller)."""

    metric: Annotated[str, AfterValidator(_promql_metric)] = Field(
        "istio_requests_total", description="Counter with one increment per call."
    )
    matchers: dict[PromLabel, str] = Field(
        default_factory=lambda: {"reporter": "destination"},
        description="Fixed label values that select one report of each call (Istio: reporter=destination; "
        "Linkerd: direction=outbound).",
    )
    consumer_label: PromLabel = Field("source_workload_namespace", description="Label holding the calling namespace.")
    provider_label: PromLabel = Field(
        "destination_workload_namespace", description="Label holding the namespace serving the call."
    )
    class_label: PromLabel | None = Field(
        "destination_service_name",
        description="Label whose value picks a call class (a service name, or a path label added by the "
        "mesh); none: every call is of the default class.",
    )
    code_label: PromLabel | None = Field(
        "response_code", description="Label holding the response code; none: every call is billable."
    )
    not_billable_codes: Annotated[str, AfterValidator(_regex)] = Field(
        "5..", description="Regular expression of response codes not charged (default: the provider's 5xx)."
    )
    unknown_callers: list[str] = Field(
        default_factory=lambda: ["unknown", ""],
        description="Consumer label values that name no namespace (reported as an unknown caller).",
    )


class CallClass(_Model):
    name: DnsLabel = Field(..., description="Name of the call class, shown on the invoice.")
    values: list[str] = Field(
        ..., min_length=1, description="Values of call_counting.class_label that are calls of this class."
    )
    price: NonNegative = Field(..., description="Price per 1,000 calls of this class.")


class CapabilityRateVersion(_Model):
    effective_from: dt.datetime = Field(..., description="UTC start of validity; applies from that hour on.")
    method: CallMethod = Field(..., description="per_call, cost_recovery or none.")
    price: NonNegative | None = Field(
        None, description="per_call: price per 1,000 calls of the default class (calls no class matches)."
    )
    classes: list[CallClass] = Field(default_factory=list, description="per_call: classes priced apart.")

    @field_validator("effective_from")
    @classmethod
    def _utc_hour(cls, value: dt.datetime) -> dt.datetime:
        value = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        if value.minute or value.second or value.microsecond:
            raise ValueError(f"{value.isoformat()} is not on the hour; methods and prices change at whole hours")
        return value

    @model_validator(mode="after")
    def _price_of_method(self) -> CapabilityRateVersion:
        if self.method is CallMethod.PER_CALL and self.price is None:
            raise ValueError(
                "method per_call needs `price:` (per 1,000 calls of the default class); "
                "use method none to show calls without charging them"
            )
        if self.method is not CallMethod.PER_CALL and (self.price is not None or self.classes):
            raise ValueError(f"method {self.method.value} takes no price or classes; remove them or use per_call")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names) or "default" in names:
            raise ValueError("call class names must be unique and not 'default' (the class of unmatched calls)")
        values = [v for c in self.classes for v in c.values]
        if len(set(values)) != len(values):
            raise ValueError("a class_label value is listed in two call classes; each value belongs to one")
        return self

    def class_of(self, value: str) -> CallClass | None:
        """The call class a class-label value belongs to, None for the default class."""
        return next((c for c in self.classes if value in c.values), None)


class CapabilityRate(_Model):
    capability: DnsLabel = Field(..., description="Name of a capability some namespace `exposes`.")
    versions: list[CapabilityRateVersion] = Field(..., min_length=1, description="Methods, each from effective_from.")
    service_category: str = Field(
        "Other", description="FOCUS ServiceCategory of its charges (an allowed value of FOCUS 1.4), e.g. Identity."
    )
    service_subcategory: str = Field(
        "Other (Other)",
        description="FOCUS ServiceSubcategory, one of the service_category's (e.g. Identity and Access Management; "
        "`Other (<category>)` when none fits).",
    )

    @field_validator("service_category")
    @classmethod
    def _focus_category(cls, value: str) -> str:
        error = focus_service_error(value, f"Other ({value})")  # every category has its catch-all
        if error:
            raise ValueError(error)
        return value

    @field_validator("service_subcategory")
    @classmethod
    def _focus_subcategory(cls, value: str, info: ValidationInfo) -> str:
        category = info.data.get("service_category")
        error = focus_service_error(category, value) if category else None
        if error:
            raise ValueError(error)
        return value

    @field_validator("versions")
    @classmethod
    def _distinct_starts(cls, versions: list[CapabilityRateVersion]) -> list[CapabilityRateVersion]:
        starts = [v.effective_from for v in versions]
        if len(set(starts)) != len(starts):
            raise ValueError("two versions share one effective_from; merge them")
        return sorted(versions, key=lambda v: v.effective_from)

    def version_at(self, when: dt.datetime) -> CapabilityRateVersion | None:
        current = None
        for version in self.versions:
            if version.effective_from <= when:
                current = version
        return current


class Corrections(_Model):
    """How a closed month is corrected (`chargeback close --correct`)."""

    materiality: NonNegative = Field(
        Decimal(0),
        description="Smallest change of a unit's month (absolute, in the rate card's currency) that gets a credit "
        "or debit note; smaller ones are recorded in the ledger, not issued. 0: every change.",
    )


class Invoicing(_Model):
    """Terms printed in the FOCUS Invoice Detail dataset, which the usage data cannot know."""

    payment_terms: str = Field(
        "Net 30",
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="PaymentTerms of every issued document in focus-invoice-detail.csv, e.g. 'Net 30' (the "
        "default) or 'Internal transfer, no payment'.",
    )


class RateCard(_Model):
    """rates.yaml: what finance decides."""

    currency: str = Field(..., pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR.")
    issuer: Issuer = Field(..., description="Invoice issuer.")
    billing_mode: BillingMode = Field(
        BillingMode.USAGE, description="usage (pay per use), request, or max of request and use."
    )
    versions: list[RateVersion] = Field(..., min_length=1, description="Prices, each from `effective_from`.")
    shared_namespaces: list[SharedNamespace] = Field(
        default_factory=list, description="Namespaces whose cost is split across units."
    )
    idle: IdlePolicy = Field(default_factory=IdlePolicy, description="Thresholds for idle allocations.")
    call_counting: CallCounting = Field(
        default_factory=CallCounting, description="Metric contract of capability calls (default: Istio)."
    )
    capabilities: list[CapabilityRate] = Field(
        default_factory=list, description="Billing method of each exposed capability, versioned."
    )
    corrections: Corrections = Field(default_factory=Corrections, description="Corrections of closed months.")
    invoicing: Invoicing = Field(default_factory=Invoicing, description="Terms of the issued documents.")
    csv_bom: bool = Field(
        True,
        description="Start the spreadsheet CSVs (usage, line_items, idle, capability_lines) with a UTF-8 "
        "byte-order mark, so spreadsheet tools read non-ASCII names right; focus.csv never has one.",
    )

    @field_validator("versions")
    @classmethod
    def _distinct_starts(cls, versions: list[RateVersion]) -> list[RateVersion]:
        starts = [v.effective_from for v in versions]
        if len(set(starts)) != len(starts):
            raise ValueError("two rate versions share one effective_from; merge them")
        return versions

    def capability_rate(self, name: str) -> CapabilityRate | None:
        return next((c for c in self.capabilities if c.capability == name), None)

    def sorted_versions(self) -> list[RateVersion]:
        return sorted(self.versions, key=lambda v: v.effective_from)

    def version_at(self, when: dt.datetime) -> RateVersion | None:
        """The version in force at `when`, or None before the first one."""
        current = None
        for version in self.sorted_versions():
            if version.effective_from <= when:
                current = version
        return current


class Catalog(BaseModel):
    """The whole catalog, as loaded from a directory."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    root: str = Field(..., description="Directory the catalog was read from.")
    pool: Pool
    units: list[BusinessUnit]
    rates: RateCard
    warnings: list[Finding] = Field(default_factory=list, description="Findings that do not block use.")

    def unit(self, unit_id: str) -> BusinessUnit | None:
        return next((u for u in self.units if u.id == unit_id), None)

    def cluster_of(self, namespace: Namespace) -> Cluster:
        """The namespace's cluster (validated to exist by `checks`)."""
        name = namespace.cluster or self.pool.clusters[0].name
        cluster = self.pool.cluster(name)
        if cluster is None:
            raise KeyError(name)
        return cluster

    def namespaces(self, cluster: str | None = None) -> list[tuple[BusinessUnit, Namespace]]:
        """(unit, namespace) pairs, optionally of one cluster, in catalog order."""
        return [
            (unit, ns)
            for unit in self.units
            for ns in unit.namespaces
            if cluster is None or (ns.cluster or self.pool.clusters[0].name) == cluster
        ]

    def owner_of(self, namespace: str, cluster: str | None = None) -> BusinessUnit | None:
        for unit, ns in self.namespaces(cluster):
            if ns.name == namespace:
                return unit
        return None
