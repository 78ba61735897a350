"""Data stages: trajectory splitting into training windows, selection, statistics."""
