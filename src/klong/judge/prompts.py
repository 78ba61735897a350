"""The judge's prompts, following PaperBench's SimpleJudge message by message, in klong's words.

Ranking call: a system message (what to do), then the paper, the addendum, the criterion and the submission's file
tree. Grading call: a system message (the task; the reproduce.sh paragraph left out for Code-Dev), then the paper, the
addendum, the chosen files, `reproduce.sh` (and for execution and result leaves `reproduce.log`), the rubric nodes
before the criterion, the criterion with its category's question, and the answer format. klong sends the user parts
as one user message (PaperBench sends consecutive user messages: the same text, in the same order).
"""

from __future__ import annotations

PROMPT_VERSION = "klong-judge-v2"
"""Part of the cache key: change it whenever a prompt changes."""


def system_prompt(code_only: bool) -> str:
    text = (
        "You are judging a candidate's attempt to reproduce a research paper.\n\nYou will first be given the paper: "
        "read it carefully; it is the ground truth for what a correct implementation and reproduction are. Then you "
        "will be shown the candidate's submission, a set of files that attempts to reproduce the paper."
    )
    if not code_only:
        text += (
            " The candidate was asked to include a `reproduce.sh` script that runs the whole reproduction and "
            "produces every result of the paper. If the script exists, it has already been run and its output is "
            "in `reproduce.log`; other files it produced (results, plots, artifacts) may be present too. If "
            "`reproduce.sh` or `reproduce.log` is missing, treat every criterion that relies on it as failed."
        )
    return text + (
        "\n\nTo judge the submission, a rubric breaks the paper down into fine-grained criteria. Your task is to "
        "check the submission and its outputs against ONE criterion of this rubric."
    )


CATEGORY_QUESTIONS = {
    "Code Development": "Does the code in the submission implement this correctly? Instructions or descriptions of "
    "an implementation are not enough: check that there is actual code that implements the requirement.",
    "Code Execution": "Does running the reproduce.sh script lead to this being executed successfully?",
    "Result Analysis": "Did running the reproduce.sh script produce evidence that agrees with these results?",
}
DEFAULT_QUESTION = "Does the submission satisfy this criterion?"

RANK_SYSTEM = """You are judging an attempt to reproduce a research paper. You will be shown the paper, one \
resolution criterion (an aspect of the paper you are marking) and the files of the submission that attempts the \
reproduction. Decide which files you need to read to judge the criterion."""

RANK = """The paper is below:
<paper>
{paper}
</paper>

The addendum below clarifies the paper and how to evaluate its reproduction, if one was given:
<addendum>
{addendum}
</addendum>

Here is the criterion that you are grading:
<criterion>
{criterion}
</criterion>

List the files most useful for judging the criterion, in descending order of relevance (at most {k} are read). \
Files:
{tree}

Answer with the full path of each file, one per line, most relevant first, and nothing else."""

FILES_INTRO = "Here are the most relevant files of the submission, concatenated:"
FILES_INTRO_RESULTS = (
    "Here are the submission's docs and the files the reproduce.sh run created or modified, concatenated:"
)

GRADE = """The paper is below:
<paper>
{paper}
</paper>

The addendum below clarifies the paper and how to evaluate its reproduction, if one was given:
<addendum>
{addendum}
</addendum>
{listing}
{files_intro}
<files>
{files}
</files>
{reproduction}
The rubric decomposes the paper hierarchically. For context, here are rubric criteria that come before the one you \
are grading (do NOT grade these):
<preceding_criteria>
{ancestors}
</preceding_criteria>

Criterion ({category}): {criterion}

The criterion you are grading is of type {category}: {question}

{answer}"""

ANSWER_TEXT = """Now evaluate the submission for this criterion. Answer in three parts:

# Expectations
From the paper, what a correct resolution of the criterion looks like, and what you will look for in the submission.

# Reality
What the files and logs of the submission show for the criterion, compared with your expectations; say which files \
you refer to, and describe only what you were given.

# Score
Whether the criterion is met, with your reasoning; then a score of either 0 or 1 on a line of its own, as \
`Score: 0` or `Score: 1`.

You must always give a score; state any uncertainty. Everything the submission produced has been shown to you: \
treat anything missing as not produced (a failure). Be strict and thorough, but judge only this criterion."""

ANSWER_JSON = """Now evaluate the submission for this criterion. Answer with one JSON object with three fields:
- "expectations": from the paper, what a correct resolution looks like and what you will look for;
- "reality": what the files and logs show for the criterion, compared with your expectations (name the files);
- "score": 1 if the criterion is met, else 0.
You must always give a score. Treat anything missing as not produced (a failure). Judge only this criterion."""

REPARSE = """Below is the answer of a judge that should contain a score and an explanation. Extract them as one \
JSON object with `valid_score` (true when the answer contains a valid score), `score` (0 or 1) and `explanation` \
(a short summary of the judge's reasoning). If the answer contains no valid score, set `valid_score` to false and \
`score` to 0.

<answer>
{answer}
</answer>"""
