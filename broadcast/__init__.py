"""Staff broadcasts: audience, HTML checks, rate limiting and the exactly-once delivery engine."""
