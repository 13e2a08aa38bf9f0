"""`llmkpi make-tiny-model DIR`: a Llama-architecture model small enough for CPU tests.

Random weights (fixed seed), a byte-level BPE tokenizer trained here on text that ships with
Python itself, and a chat template: nothing is downloaded. Needs the engine environment
(torch, transformers, tokenizers); the result is cached by its recipe version.
"""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
from pathlib import Path

RECIPE_VERSION = "2"
VOCAB_SIZE = 2048
MAX_POSITIONS = 2048
CORPUS_MODULES = ("textwrap", "string", "argparse", "json.decoder", "email.message", "calendar",
                  "difflib", "fractions", "statistics", "ast")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<|begin|>", "<|end_of_text|>", "<|pad|>", "<|system|>", "<|user|>",
           "<|assistant|>", "<|end|>"]


def corpus() -> list[str]:
    """Local training text: the source of a few standard-library modules."""
    texts = []
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        texts.append(inspect.getsource(module))
    return texts


def is_built(target: Path) -> bool:
    marker = target / "llmkpi-tiny-model.json"
    if not marker.exists():
        return False
    return bool(json.loads(marker.read_text()).get("recipe") == RECIPE_VERSION)


def build(target: Path, *, hidden: int = 256, layers: int = 4, seed: int = 0) -> Path:
    """Write the model to `target` unless the same recipe is already there."""
    if is_built(target):
        return target
    try:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise ValueError(
            f"make-tiny-model needs torch, transformers and tokenizers ({exc.name} is missing);"
            " run it from the engine environment: .venv-engine/bin/llmkpi make-tiny-model DIR"
        ) from None
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin|>", eos_token="<|end_of_text|>",
        pad_token="<|pad|>", model_max_length=MAX_POSITIONS)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(staging)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=bpe.get_vocab_size(), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, torch_dtype="float32")
    model = LlamaForCausalLM(config)
    model.save_pretrained(staging, safe_serialization=True)
    parameters = sum(p.numel() for p in model.parameters())
    (staging / "llmkpi-tiny-model.json").write_text(json.dumps(
        {"recipe": RECIPE_VERSION, "parameters": parameters, "hidden": hidden,
         "layers": layers, "seed": seed, "corpus": list(CORPUS_MODULES)}, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
