"""Tests of chargeback."""
