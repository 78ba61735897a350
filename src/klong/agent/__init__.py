"""The agent: its context policy (what the model sees at each call)."""
