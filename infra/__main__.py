"""`pulumi up` entry point (Pulumi.yaml: main: infra/). Everything else lives in infra.program."""

from infra.program import main

main()
