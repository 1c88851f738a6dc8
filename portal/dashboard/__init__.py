"""The dashboard: balance, this month's and today's spend, quick start, models."""
