"""Run the Pulumi program without an engine, under Pulumi's own mocks, and record what it declares.

Used by `pool render`, `pool validate`, `pool check` (the policy pack offline) and the tests. Each
run happens on its own thread, with a fresh event loop and a fresh `contextvars` context, after
`reset_options` has cleared the root stack: Pulumi keeps its runtime state (settings, root
resource, config) in context variables, so nothing leaks between runs or into the caller — the
runs can be repeated any number of times in one process (pulumi/pulumi#8280 is the known pitfall
of reusing one root stack across runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from pool_catalog import Catalog
from pool_catalog.models import Cluster

from .cluster_state import FACTS_READER, ClusterFacts
from .errors import ProgramError
from .program import build

PROJECT = "resource-pool"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class RegisteredResource:
    type: str
    """Pulumi type token, e.g. "kubernetes:core/v1:Namespace"."""
    name: str
    """Pulumi logical name."""
    props: dict
    """Input properties as the engine receives them (camelCase keys: {"metadata": ..., "spec": ...})."""
    parent_type: str | None
    """Type token of the parent component; None for resources directly under the stack."""


@dataclass(frozen=True)
class ResourceOptionsSeen:
    """Resource options the engine would act on, as sent in the registration."""

    protect: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    dependencies: tuple[str, ...]
    """URNs this resource waits for (depends_on plus inputs from other resources)."""


@dataclass
class ProgramRun:
    """Everything one run under mocks declared."""

    resources: list[RegisteredResource]
    options: dict[tuple[str, str], ResourceOptionsSeen] = field(default_factory=dict)
    """By (type, name)."""
    stack_outputs: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    """What the program function returned (for `build`: the stack outputs)."""

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_token]


class _RecordingMocks(pulumi.runtime.Mocks):
    """Answers every registration with its own inputs as outputs and records it."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, str, dict]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.registered.append((args.typ, args.name, args.inputs))
        # The inputs object itself: the monitor then echoes the request instead of re-serializing it.
        return (f"{args.name}-id" if args.custom else None), args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        raise ProgramError(f"the program called {args.token}, which has no mock: it must not read the cluster")


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, plus what `Mocks.new_resource` does not see: parent and resource options.

    It also skips the stock monitor's costliest step: re-serializing the outputs through a
    private event loop on the executor thread. When the mocks answer with the inputs unchanged
    (always, here) the request's own property struct is the answer.
    """

    def __init__(self, recorder: _RecordingMocks) -> None:
        super().__init__(recorder)
        self.parents: dict[tuple[str, str], str] = {}
        self.options: dict[tuple[str, str], ResourceOptionsSeen] = {}

    def RegisterResource(self, request: Any) -> Any:
        if request.type == STACK_TYPE:
            return super().RegisterResource(request)
        key = (request.type, request.name)
        parent_type = _type_of_urn(request.parent) if request.parent else None
        if parent_type and parent_type != STACK_TYPE:
            self.parents[key] = parent_type
        self.options[key] = ResourceOptionsSeen(
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            ignore_changes=tuple(request.ignoreChanges),
            dependencies=tuple(request.dependencies),
        )
        inputs = rpc.deserialize_properties(request.object)
        args = pulumi.runtime.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        resource_id, state = self.mocks.new_resource(args)
        urn = self.make_urn(request.parent, request.type, request.name)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        outputs = request.object if state is inputs else _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id or "", object=outputs)


def _type_of_urn(urn: str) -> str:
    """urn:pulumi:stack::project::parentType$type::name → type."""
    qualified_type = urn.split("::")[2]
    return qualified_type.split("$")[-1]


def run_pulumi(
    program: Callable[[], Any],
    *,
    stack: str = "dev",
    config: dict[str, str] | None = None,
    cluster_facts: Callable[[Cluster], ClusterFacts] | None = None,
) -> ProgramRun:
    """Run `program` as a Pulumi program under mocks; exceptions it raises propagate unchanged.

    The program's reads of the cluster (nodes, MetalLB) are answered by `cluster_facts`, by default
    with the cluster the catalog describes.
    """
    recorder = _RecordingMocks()
    monitor = _RecordingMonitor(recorder)
    outcome: dict[str, Any] = {}

    def on_thread() -> None:
        loop = None
        try:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            FACTS_READER.set(cluster_facts or ClusterFacts.assumed)
            pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=False)
            set_all_config(dict(config or {}))
            pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=stack, preview=False, monitor=monitor)

            def run_program() -> None:
                outcome["result"] = program()

            loop.run_until_complete(run_pulumi_func(run_program))
            root = pulumi_settings.get_root_resource()
            exported = dict(getattr(root, "outputs", {}) or {})
            outcome["stack_outputs"] = loop.run_until_complete(_resolve(exported))
        except BaseException as e:  # handed to the caller's thread below
            outcome["error"] = e
        finally:
            if loop is not None:
                loop.close()
            asyncio.set_event_loop(None)

    # A fresh Context: the runtime's context variables start unset on this thread and vanish with it.
    thread = threading.Thread(target=contextvars.Context().run, args=(on_thread,), name="pulumi-mocks")
    with _without_source_positions():
        thread.start()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    if "result" not in outcome:
        raise ProgramError("the Pulumi program did not run to its end under mocks")
    resources = [
        RegisteredResource(type=typ, name=name, props=props, parent_type=monitor.parents.get((typ, name)))
        for typ, name, props in recorder.registered
    ]
    return ProgramRun(
        resources=resources,
        options=dict(monitor.options),
        stack_outputs=outcome.get("stack_outputs", {}),
        result=outcome.get("result"),
    )


@contextlib.contextmanager
def _without_source_positions() -> Iterator[None]:
    """Skip the stack walk the SDK does per resource to tell the engine its source line.

    Mocks have no engine to show it to, and the walk is a sixth of the time per resource. Runs are
    serialized by a lock because the switch is process-wide.
    """
    with _SOURCE_POSITIONS_LOCK:
        original = getattr(pulumi_resource, "_get_stack_trace", None)
        if original is None:  # a Pulumi release without it: nothing to skip
            yield
            return
        pulumi_resource._get_stack_trace = source_pb2.StackTrace
        try:
            yield
        finally:
            pulumi_resource._get_stack_trace = original


_SOURCE_POSITIONS_LOCK = threading.Lock()


async def _resolve(values: dict[str, Any]) -> dict[str, Any]:
    if not values:
        return {}
    resolved = await pulumi.Output.from_input(values).future()
    return dict(resolved or {})


def run_build(catalog: Catalog, cluster: str, *, priced_at: dt.datetime | None = None) -> ProgramRun:
    """`infra.program.build` for one cluster under mocks."""
    return run_pulumi(lambda: build(catalog, cluster, priced_at=priced_at), stack=cluster)


def run_program(catalog: Catalog, cluster: str) -> list[RegisteredResource]:
    """Every resource (components included) the program declares for `cluster`.

    The order is the engine's registration order, which is not stable between runs: sort if it matters.
    """
    return run_build(catalog, cluster).resources
