"""The agent runtime: the episode loop, tools, prompts, workspace and monitor."""
