"""Tests of chargeback.rate."""
