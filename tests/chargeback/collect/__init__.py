"""Tests of chargeback.collect."""
