"""PaperBench rubric trees: load and validate, transform, aggregate scores."""

from klong.rubric.tree import RubricError, RubricNode, load_rubric, parse_rubric, rubric_stats

__all__ = ["RubricError", "RubricNode", "load_rubric", "parse_rubric", "rubric_stats"]
