"""`llmkpi vllm-serve MODEL ...`: vLLM's OpenAI server with the llmkpi stat-logger plugin."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

HELP = "start vLLM's OpenAI server with the llmkpi plugin"
DESCRIPTION = "Everything after MODEL goes to vLLM unchanged."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model")
    parser.add_argument("vllm_args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("vllm") is None:
        raise ValueError("vllm is not installed in this environment; use the engine"
                         " environment (.venv-engine/bin/llmkpi) or `pip install vllm`")
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
            args.model, *args.vllm_args]
    os.execv(sys.executable, argv)  # vLLM takes over this process
