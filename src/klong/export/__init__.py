"""Exports of klong's records into other tools' formats, each read by that tool's own code.

- `paperbench`: a run dir -> PaperBench's direct-submission folder and its run-group layout (`grade.json` included);
- `openai_chat`: trajectories -> OpenAI chat fine-tuning / inference lines (`{"messages", "tools", ...}`).
"""
