"""The call pipeline: plan a request for its provider, forward it, translate and relay
the answer, and count its tokens.

This wing may import ``accounting`` and the floor (``db``, ``config``, ``catalog``,
``auth``, ``errors``), never ``api``.
"""
