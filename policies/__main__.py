"""The policy pack process `pulumi preview --policy-pack policies` starts.

`PolicyPack(...)` serves the rules over gRPC and never returns, so it stays alone here: tests and
`pool check` import `policies.rules` and never this module.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.rules import policies

PolicyPack(
    name="resource-pool",
    description="Guardrails of the Resource Pool: unit namespaces are labelled, bounded, isolated and fit the servers.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
