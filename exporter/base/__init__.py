"""The ground every layer stands on: time, logs, memory, untrusted text, YAML; no imports up."""
