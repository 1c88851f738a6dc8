"""Money and what it is measured by: the ledger (the one writer of ledger entries and
balances), the leases behind reservations, the batch writer that logs and charges
requests, the usage sums, the request log and the catalogue's price history.

This wing may import only the floor (``db``, ``config``, ``catalog``, ``auth``,
``errors``, ``background``).
"""
