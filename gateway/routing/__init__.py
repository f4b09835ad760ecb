"""From a requested model to a provider that can serve it."""
