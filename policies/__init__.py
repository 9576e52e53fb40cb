"""The Resource Pool's CrossGuard policy pack (`rules` holds the rules, `__main__` serves them)."""
