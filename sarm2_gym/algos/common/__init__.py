"""Helpers shared by the policy-learning code: checkpoint I/O, chunk execution, evaluation."""
