"""API keys: create (shown once), rename, revoke, spend and last use."""
