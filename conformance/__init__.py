"""convspec's conformance suite: Hypothesis-generated checks any backend plugs into."""
