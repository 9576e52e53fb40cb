"""Tests of chargeback.outputs."""
