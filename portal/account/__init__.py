"""Settings: account info, time zone, change password."""
