"""Stores: small async protocols (base.py) with a SQL and an in-memory implementation."""
