"""Provisioning half of Resource Pool: the catalog, the Pulumi components and the `pool` CLI."""
