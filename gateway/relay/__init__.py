"""Moving a request to a provider and its answer back: unary and streaming."""
