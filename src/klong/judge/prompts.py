"""The judge's prompts, modelled on PaperBench's SimpleJudge: paper, addendum, relevant files, reproduction output,
the criteria above the leaf, the criterion and its category's question; answer: expectations, reality, score."""

from __future__ import annotations

PROMPT_VERSION = "klong-judge-v1"

SYSTEM = """You are grading an attempt to replicate a research paper. You are given the paper, an addendum of \
clarifications, files from the submission, and one criterion from the grading rubric. Judge only that criterion, \
strictly, from the evidence shown: if the evidence is missing, the criterion is not met."""

CATEGORY_QUESTIONS = {
    "Code Development": "Does the code in the submission contain a correct implementation of what the criterion "
    "describes? Judge the source code only; whether it was run does not matter here.",
    "Code Execution": "Was the code run (by reproduce.sh) and did it do what the criterion describes? Judge from "
    "reproduce.sh, its log and the files it produced.",
    "Result Analysis": "Do the results the reproduction produced show what the criterion describes? Judge only from "
    "files produced by running reproduce.sh (and its log), not from claims in other files.",
}

RANK_FILES = """Below is the list of files in a submission that attempts to replicate a paper, and one grading \
criterion. List the files most useful for judging the criterion, most relevant first (at most {k}).

Criterion: {criterion}

Files:
{tree}

Answer with a JSON object: {{"files": ["path", ...]}}"""

GRADE = """# Paper
{paper}

# Addendum
{addendum}

# Submission files
{tree}

{files}
{reproduction}
# Grading
Criteria above this one in the rubric (context, from the top):
{ancestors}

Criterion ({category}): {criterion}

{question}

Answer with a JSON object with three fields:
- "expectations": what a correct replication would show for this criterion;
- "reality": what the submission actually shows (cite files);
- "score": 1 if the criterion is met, else 0."""
