"""Request log: filters, keyset pages loaded by htmx, CSV export."""
