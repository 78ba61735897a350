"""Grading submissions against rubric trees: leaf judges (LLM, programmatic checks), tree grading, cache, queue."""
