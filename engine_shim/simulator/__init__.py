"""A simulated OpenAI-compatible engine: a discrete-event model of continuous batching.

It is the embedded default when no GPU is present; its /metrics speak vLLM's names.
"""
