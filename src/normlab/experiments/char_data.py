"""Character-level language-modelling data for chapter 6: *Persuasion* (public domain).

The text ships inside the package (``normlab/data/persuasion.txt``; source and licence in
``normlab/data/README.md``), so nothing is downloaded and notebooks find it from any folder.
Every random draw goes through an explicit ``torch.Generator``: the same seed gives the
same batches in every run and in every configuration of an experiment.
"""

import numbers
from dataclasses import dataclass
from importlib import resources

import torch

TEXT_FILE = "persuasion.txt"


def load_text(name=TEXT_FILE):
    """The shipped text ``name`` from ``normlab/data/`` as a string."""
    return resources.files("normlab").joinpath("data", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class CharDataset:
    """A text as token ids, a character vocabulary and a contiguous train/val split.

    ``train`` is the first ``train_fraction`` of the text and ``val`` the rest (a
    contiguous split, so validation measures generalisation to unseen passages).
    """

    chars: tuple
    train: torch.Tensor  # (n_train,) int64 token ids
    val: torch.Tensor  # (n_val,) int64 token ids

    @classmethod
    def from_text(cls, text, train_fraction=0.9):
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError("text must be a string of at least two characters")
        if not isinstance(train_fraction, numbers.Real) or not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
        chars = tuple(sorted(set(text)))
        ids = encode(text, chars)
        n_train = int(len(ids) * train_fraction)
        return cls(chars, ids[:n_train], ids[n_train:])

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        return encode(text, self.chars)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids.tolist())


def encode(text, chars):
    """Token ids (int64 tensor of shape ``(len(text),)``) of ``text`` in vocabulary ``chars``."""
    index = {c: i for i, c in enumerate(chars)}
    unknown = set(text) - index.keys()
    if unknown:
        raise ValueError(f"text has characters outside the vocabulary: {sorted(unknown)[:5]}")
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def load_dataset(train_fraction=0.9):
    """The shipped text as a :class:`CharDataset` (90 % train, 10 % validation)."""
    return CharDataset.from_text(load_text(), train_fraction)


def get_batch(ids, batch_size, block_size, generator):
    """Random windows of ``ids``: inputs ``x`` and next-character targets ``y``.

    ``x[b] = ids[s_b : s_b + T]`` and ``y[b] = ids[s_b + 1 : s_b + T + 1]`` with start
    offsets ``s_b`` drawn from ``generator``; both have shape ``(batch_size, block_size)``.
    """
    if len(ids) <= block_size:
        raise ValueError(f"block_size={block_size} must be smaller than the data ({len(ids)})")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = ids[starts[:, None] + offsets]  # (B, T)
    y = ids[starts[:, None] + offsets + 1]  # (B, T)
    return x, y


def eval_batches(ids, n_batches, batch_size, block_size, seed):
    """A fixed list of ``n_batches`` ``(x, y)`` pairs, so every model is scored on the same text."""
    generator = torch.Generator().manual_seed(seed)
    return [get_batch(ids, batch_size, block_size, generator) for _ in range(n_batches)]
