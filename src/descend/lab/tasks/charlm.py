"""``charlm``: a character-level transformer language model on the Python standard library's
own source files (present wherever Python is: nothing is downloaded).

The corpus is a fixed list of the standard library's modules, read as text and cut into
non-overlapping windows of ``CONTEXT + 1`` characters: the model reads ``CONTEXT`` characters
and predicts each next one. Characters are mapped onto printable ASCII plus newline (anything
else becomes one "unknown" symbol). The windows are dealt out to train / validation / test with
a fixed seed. The model is a 2-layer pre-norm causal transformer (width 64, 4 heads, learned
positions); the loss is the mean cross-entropy per character in nats (``classification`` is
False: its targets are sequences, so its quality is the loss, not an accuracy). The corpus
changes a little between Python versions; the report names the version it ran on.
"""

from __future__ import annotations

import string
import sysconfig
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descend.lab.data.splits import to_split
from descend.lab.tasks.base import Splits, Task

MODULES = ("argparse", "textwrap", "string", "dataclasses", "functools", "difflib",
           "inspect", "json/decoder", "json/encoder", "pathlib", "shutil", "tempfile")
CONTEXT = 64
SIZES = (1536, 256, 256)  # train / val / test windows
ALPHABET = string.printable[:-5] + "\n"  # printable ASCII without \t\r\x0b\x0c, plus newline
VOCAB = len(ALPHABET) + 1  # the last symbol: unknown
WIDTH, HEADS, LAYERS = 64, 4, 2


def corpus() -> str:
    """The standard-library sources the windows are cut from, concatenated."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in MODULES:
        path = folder / f"{name}.py"
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    if not texts:
        raise ValueError(f"no standard-library source found in {folder} for the charlm task")
    return "\n".join(texts)


def encode(text: str) -> np.ndarray:
    """Characters -> symbol indices (unknown characters -> ``VOCAB - 1``)."""
    table = np.full(256, VOCAB - 1, dtype=np.int64)
    for i, ch in enumerate(ALPHABET):
        table[ord(ch)] = i
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return np.where(codes < 256, table[np.minimum(codes, 255)], VOCAB - 1)


@lru_cache(maxsize=1)
def load(seed: int = 0) -> Splits:
    """Fixed train / val / test windows (the seed varies nothing here)."""
    symbols = encode(corpus())
    n = sum(SIZES)
    windows = len(symbols) // (CONTEXT + 1)
    if windows < n:
        raise ValueError(f"the charlm corpus has {windows} windows; {n} are needed")
    chunks = symbols[:windows * (CONTEXT + 1)].reshape(windows, CONTEXT + 1)
    chosen = chunks[np.random.default_rng(0).permutation(windows)[:n]]
    bounds = np.cumsum([0, *SIZES])
    parts = [chosen[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return Splits(*(_split(part) for part in parts))


def _split(windows: np.ndarray):
    split = to_split(windows[:, :-1], windows[:, 1:])
    return type(split)(split.x.long(), split.y.long())


class CharTransformer(nn.Module):
    """Symbol indices [batch, CONTEXT] -> next-symbol logits [batch, CONTEXT, VOCAB]."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Parameter(torch.zeros(CONTEXT, WIDTH))
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, 2 * WIDTH, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(CONTEXT))

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x) + self.position[:x.shape[1]]
        h = self.blocks(h, mask=self.mask[:x.shape[1], :x.shape[1]], is_causal=True)
        return self.head(self.norm(h))


def build(seed: int) -> CharTransformer:
    """A CharTransformer initialized from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CharTransformer()
        nn.init.normal_(model.position, std=0.02)
        return model


def loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy per character (nats)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


TASK = Task(
    name="charlm",
    description=f"character-level transformer LM ({LAYERS} layers, width {WIDTH}) on the "
                "Python standard library's source, cross-entropy per character",
    load=load,
    build_model=build,
    loss=loss,
    classification=False,
    epochs=4,
    batch_size=32,
    lr_grid=(1e-4, 1e-3, 1e-2),
)
