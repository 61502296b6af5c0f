"""Who may call what, and what was done: credentials (API keys, JWTs) to principals with scopes,
per-credential rate limits, and the hash-chained audit trail."""
