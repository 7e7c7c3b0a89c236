"""``ferryman demo``: the user's journey, narrated, on the embedded default."""
