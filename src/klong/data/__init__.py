"""Data stages: messages -> tokens (render), trajectory statistics."""
