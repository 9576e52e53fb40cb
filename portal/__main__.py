"""`python -m portal`: the same as `pool-portal`."""

from portal.cli import main

main()
