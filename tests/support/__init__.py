"""Test helpers and oracles: local Prometheus, PostgreSQL and Alertmanager, catalog copies, hand-built frames."""
