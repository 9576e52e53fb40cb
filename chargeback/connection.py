"""The Prometheus connection flags of every command that talks to Prometheus, generated from `PrometheusSettings`.

One declaration: each flag below names the settings field it sets; its help text is the field's description
(plus the model's default), so `invoice`, `idle`, `doctor`, `serve` and `close` show the same flags with the
same help, and a new field is one row here. `@connection_options` adds the flags to a command and hands it a
validated `PrometheusSettings` as `settings` — not a tuple of loose values. Only the flags given are set, so
`settings.model_fields_set` tells a command which ones the user chose (serve caps an unset deadline).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import typer

from .collect.prometheus import PrometheusSettings, shown_url
from .errors import ChargebackError

HOUR = 3600.0
R = TypeVar("R")


def parse_headers(values: list[str]) -> dict[str, str]:
    """`--header K=V` values as a dict of headers."""
    headers = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name.strip():
            raise ChargebackError(f"--header {value!r} is not K=V; write e.g. --header X-Scope-OrgID=finance")
        headers[name.strip()] = content.strip()
    return headers


@dataclass(frozen=True)
class ConnectionFlag:
    """A command-line flag that sets one field of `PrometheusSettings`."""

    field: str
    """The settings field; its description is the flag's help."""
    flag: str
    cli_type: Any
    """What the command line parses (None when the flag is not given)."""
    envvar: str | None = None
    required: bool = False
    unit: str = ""
    """For a number: what it counts ("s", "hours"); it must be positive and finite."""
    scale: float = 1.0
    """Settings value per flag unit (--chunk-hours: 3600 s an hour)."""
    note: str = ""
    """What the command line adds to the field's description (how to write the value)."""

    @property
    def parameter(self) -> str:
        """Name of the command's parameter (unique among the command's own)."""
        return "prometheus_" + self.field

    def help(self) -> str:
        """The field's description, then how to write it and the model's default."""
        info = PrometheusSettings.model_fields[self.field]
        text = info.description or ""
        if self.note:
            text += f" {self.note}"
        if self.unit and info.default is not None:
            default = info.default.total_seconds() if isinstance(info.default, dt.timedelta) else info.default
            text += f" (default {default / self.scale:g} {self.unit})"
        elif isinstance(info.default, int | float) and not isinstance(info.default, bool):
            text += f" (default {info.default:g})"
        return text

    def to_setting(self, value: Any) -> Any:
        """The flag's value as the settings field takes it; a bad number is an error naming the flag."""
        if self.unit:
            if not (math.isfinite(value) and value > 0):
                raise ChargebackError(f"{self.flag} {value:g}: give a positive number of {self.unit}")
            seconds = value * self.scale
            return dt.timedelta(seconds=seconds) if self.field == "chunk" else seconds
        if self.field == "headers":
            return parse_headers(value)
        return value


CONNECTION_FLAGS: tuple[ConnectionFlag, ...] = (
    ConnectionFlag("url", "--prometheus", str, envvar="PROMETHEUS_URL", required=True),
    ConnectionFlag("bearer_token_file", "--bearer-token-file", Path | None),
    ConnectionFlag("basic_auth_user", "--basic-auth-user", str | None),
    ConnectionFlag("basic_auth_password_file", "--basic-auth-password-file", Path | None),
    ConnectionFlag("ca_bundle", "--ca-bundle", Path | None),
    ConnectionFlag("timeout", "--timeout", float | None, unit="s"),
    ConnectionFlag("chunk", "--chunk-hours", float | None, unit="hours", scale=HOUR),
    ConnectionFlag("deadline", "--deadline", float | None, unit="s"),
    ConnectionFlag("stall", "--stall", float | None, unit="s"),
    ConnectionFlag("retries", "--retries", int | None),
    ConnectionFlag("retry_budget", "--retry-budget", int | None),
    ConnectionFlag("retry_share", "--retry-share", float | None),
    ConnectionFlag("headers", "--header", list[str] | None, note="Write K=V, e.g. X-Scope-OrgID=finance (repeatable)."),
)

MAX_CHUNK = dt.timedelta(days=366)


def settings_from_flags(values: dict[str, Any]) -> PrometheusSettings:
    """Settings from the flags' values (by field; None: not given, the model's default holds).

    Every problem names its flag: `--timeout -1: give a positive number of s`, `--prometheus 'ftp://…': …`."""
    given = {flag: values[flag.field] for flag in CONNECTION_FLAGS if values.get(flag.field) is not None}
    fields = {flag.field: flag.to_setting(value) for flag, value in given.items()}
    if fields.get("chunk", dt.timedelta(0)) > MAX_CHUNK:
        raise ChargebackError(f"--chunk-hours {given_value(given, 'chunk'):g}: give at most a year's hours (8784)")
    try:
        return PrometheusSettings(**fields)
    except pydantic.ValidationError as e:
        by_field = {flag.field: flag for flag in given}
        problems = []
        for problem in e.errors():
            name = str(problem["loc"][0]) if problem["loc"] else ""
            flag = by_field.get(name)
            shown = shown_url(given[flag]) if flag and flag.field == "url" else given.get(flag)
            where = f"{flag.flag} {shown!r}" if flag else name
            problems.append(f"{where}: {problem['msg']}")
        raise ChargebackError("; ".join(problems)) from None


def given_value(given: dict[ConnectionFlag, Any], field: str) -> Any:
    return next(value for flag, value in given.items() if flag.field == field)


def _parameter(flag: ConnectionFlag) -> inspect.Parameter:
    option = typer.Option(flag.flag, help=flag.help(), envvar=flag.envvar, show_default=False)
    return inspect.Parameter(
        flag.parameter,
        inspect.Parameter.KEYWORD_ONLY,
        default=inspect.Parameter.empty if flag.required else None,
        annotation=Annotated[flag.cli_type, option],
    )


def connection_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add the connection flags to `command` (a typer command taking `settings: PrometheusSettings`)."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "settings"]
    if len(own) == len(signature.parameters):
        raise TypeError(f"{command.__name__} takes no `settings` parameter for the connection flags")
    parameters = own + [_parameter(flag) for flag in CONNECTION_FLAGS]

    @functools.wraps(command)
    def with_settings(**kwargs: Any) -> R:
        values = {flag.field: kwargs.pop(flag.parameter) for flag in CONNECTION_FLAGS}
        return command(**kwargs, settings=settings_from_flags(values))

    with_settings.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_settings.__annotations__ = {p.name: p.annotation for p in parameters}
    del with_settings.__wrapped__  # typer reads the signature above, not the command's own
    return with_settings
