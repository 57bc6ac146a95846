"""Evaluation harness: datasets, scorers, LLM judges, runs, paired comparisons, CI gates."""
