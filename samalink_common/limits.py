"""Limits both processes enforce, so the portal's friendly check and the gateway's own agree."""

# The longest date range, in days counted inclusively, a usage or money report covers.
MAX_REPORT_DAYS = 366
