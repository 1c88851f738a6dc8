"""What the gateway and the portal both need, and nothing else.

The two processes share no code but this package: each reads its own settings, and
both raise the same ``ConfigError`` and find the same instance token and database URL
rules here (``config``), and enforce the same report limits (``limits``). It imports
nothing from ``gateway`` or ``portal``.
"""
