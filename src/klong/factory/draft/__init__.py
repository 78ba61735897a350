"""Rubric and addendum drafting: one JSON-mode model call per step, each written to the sidecar so it can be replayed.

Steps (FACTORY.md): elements -> evidence matrix -> addendum -> skeleton -> subtrees (in parallel) -> weights ->
review and bounded repair; the tree itself is assembled in code (`assemble`). `stage.run_draft` runs them per paper.
"""
