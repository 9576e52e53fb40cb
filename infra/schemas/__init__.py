"""JSON schemas of the custom resources the program emits (the Kubernetes OpenAPI schema lacks them)."""
