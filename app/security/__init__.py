"""Access control: API keys stored as hashes, roles, the append-only audit trail, per-key rate limits."""
