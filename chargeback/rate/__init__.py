"""Rate: rating at the rate card, idle allocations, the period's result and the invoices built from it.

Imports collect (and chargeback.errors, chargeback.period, pool_catalog), never outputs or the commands.
"""
