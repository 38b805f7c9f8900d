"""Classifiers: remote vision LLMs, the offline local pipeline, and the hybrid order."""
