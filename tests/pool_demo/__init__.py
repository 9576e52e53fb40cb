"""Tests of pool_demo."""
