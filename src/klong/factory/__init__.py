"""Research-Factory: papers in, PaperBench-format replication tasks and distilled trajectories out.

Stages run in order, each reading the previous stage's `papers.jsonl` and writing its own under the factory folder:
`collect -> enrich -> select -> decontam -> fetch -> convert -> blacklist -> draft -> check -> package`. See
`klong.factory.layout` for the folder layout and `klong.factory.records` for the paper record.
"""
