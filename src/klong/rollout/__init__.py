"""Many tasks x attempts: a worker pool over episodes, skipping finished runs, resuming unfinished ones."""
