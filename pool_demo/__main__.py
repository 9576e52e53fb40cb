"""`python -m pool_demo` (what `make demo` runs): see pool_demo.demo."""

from pool_demo.demo import main

main()
