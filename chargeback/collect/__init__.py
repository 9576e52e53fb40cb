"""Collect: the Prometheus client, the PromQL, the usage frame and the coverage doctor.

The lowest layer of chargeback: imports only chargeback.errors, chargeback.period and pool_catalog.
"""
