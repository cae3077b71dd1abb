"""Which expert(s) answer a prompt: routers and the centroids the nodes send (numpy only)."""
