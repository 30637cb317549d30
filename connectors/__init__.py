"""Adapters between the gateway's domain and partners' own systems."""
