"""Operator commands that manage the store: ``fulcrum keys …`` and ``fulcrum tenants …``."""
