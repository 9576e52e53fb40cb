"""Provisioning: the Pulumi program and components and the `pool` CLI, on top of pool_catalog."""
