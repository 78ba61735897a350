"""Training: trajectory-splitting SFT (and, built on it, progressive RL)."""
