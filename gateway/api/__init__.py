"""The gateway's HTTP surfaces: the public ``/v1`` API, the internal API the portal calls,
and the operator console's admin API, with what they share in ``http``.

This wing may import ``proxy``, ``accounting`` and the floor; nothing imports it but
``gateway.app``.
"""
