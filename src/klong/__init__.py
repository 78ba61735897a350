"""klong: train and evaluate LLM agents on extremely long-horizon tasks (the KLong recipe)."""

__version__ = "0.1.0"
