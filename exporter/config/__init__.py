"""The YAML config as one validated model, and its error messages."""
