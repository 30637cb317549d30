"""OAuth 2.0 authorization server and resource protection. Knows tokens and clients, not points."""
