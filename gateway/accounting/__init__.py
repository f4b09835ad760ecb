"""Usage, token counting and pricing: what a request consumed and cost."""
