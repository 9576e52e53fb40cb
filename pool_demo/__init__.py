"""The workshop: `make demo`, its usage scenarios and the throw-away Prometheus, on top of infra and chargeback.

Nothing in infra, policies or chargeback imports this package; tests use its scenarios and local Prometheus.
"""
