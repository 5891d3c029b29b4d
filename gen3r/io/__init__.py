"""File exporters and atomic file writing."""
