"""The Podero API side: transport, budget, tokens, endpoints, discovery and history pages."""
