"""Policy learning: TinyVLA + behaviour cloning (``vla``), SPIRAL (``spiral``), PPO/BC baselines."""
