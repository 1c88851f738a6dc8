"""SAMALink gateway: the public /v1 API and the internal REST API behind the portal."""

__version__ = "0.1.0"
