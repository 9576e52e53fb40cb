"""The portal: the pool in a browser for business units, the platform team and finance.

Server-rendered pages over the catalog (`pool_catalog`), the request checks of `pool request`
(`infra.request`) and the ledger of issued months (`chargeback.ledger`); nothing here computes money of its
own. `pool-portal` (`portal.cli`) starts it.
"""
