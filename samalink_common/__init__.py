"""What the gateway and the portal both need at start-up, and nothing else.

The two processes share no code but this package: each reads its own settings, and
both raise the same ``ConfigError`` and find the same instance token and database URL
rules here. It imports nothing from ``gateway`` or ``portal``.
"""
