"""The engine: claims queued actions, runs them on connectors, retries, and records outcomes."""
