"""Sign up, sign in, sign out and password reset."""
