"""The simulator's tokenizer and word source: deterministic, exact, dependency-free.

A token is a word or a punctuation mark; chat messages carry a fixed template overhead, as
a real chat template does. Usage counts are exact with respect to this tokenizer.
"""

from __future__ import annotations

import random
import re
from typing import Any

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
TOKENS_PER_MESSAGE = 4
TOKENS_FOR_REPLY_PRIMER = 3

VOCABULARY = (
    "the model serves tokens to every tenant while the scheduler batches requests across"
    " steps and the cache keeps keys and values for each sequence so attention reads them"
    " again latency grows when the queue fills and throughput rises with batch size until"
    " memory runs out then requests wait or are preempted and recomputed later cost per"
    " token falls as utilization climbs revenue follows adoption engineers ship features"
    " faster when deployments are small and frequent incidents recover quickly with good"
    " alerts dashboards show trends budgets burn slowly on healthy days"
).split()


def count_text_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


def split_tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a completions (`prompt`) or chat (`messages`) request body."""
    if "messages" in body:
        total = TOKENS_FOR_REPLY_PRIMER
        for message in body["messages"]:
            total += TOKENS_PER_MESSAGE + count_text_tokens(_message_text(message))
        return total
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        if prompt and all(isinstance(p, int) for p in prompt):
            return len(prompt)
        return sum(count_text_tokens(str(p)) for p in prompt)
    return count_text_tokens(str(prompt))


def prompt_token_strings(body: dict[str, Any]) -> list[str]:
    """The prompt as tokens, for prefix-cache hashing (template tokens included)."""
    if "messages" in body:
        out: list[str] = []
        for message in body["messages"]:
            out += ["<|msg|>", str(message.get("role", "")), "<|sep|>", "<|end|>"]
            out += split_tokens(_message_text(message))
        return [*out, "<|assistant|>", "<|sep|>", "<|start|>"]
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        return [str(p) for p in prompt]
    return split_tokens(str(prompt))


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class WordSource:
    """Deterministic words for one request."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def next_token(self, first: bool) -> str:
        word = self._rng.choice(VOCABULARY)
        return word if first else " " + word
