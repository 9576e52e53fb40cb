"""Outputs: CSV, FOCUS, HTML with charts, PDF, report sets and month-over-month history.

Imports rate and collect, never run, cli, exporter or the ledger, which sit above it.
"""
