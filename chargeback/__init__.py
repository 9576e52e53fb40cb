"""Chargeback: usage from Prometheus, rated at the catalog's rate card, into invoices and reports."""
