"""Tests of pool_catalog."""
