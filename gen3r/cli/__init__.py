"""Command-line interface (``gen3r ...``)."""
