"""Serving over HTTP: the web server, its endpoints, TLS and basic auth."""
