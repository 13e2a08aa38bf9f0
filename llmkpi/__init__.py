"""Composition root: the llmkpi command, settings and the wiring of sinks."""

__version__ = "0.1.0"
