"""Penn Treebank, Mikolov's word-level language-modelling split (ptb.{train,valid,test}.txt).

Tokenisation follows the standard LM setup: each line's whitespace-separated words, then `<eos>`;
the vocabulary is built from the training file in order of first occurrence (10,000 words).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from nas_impl.data.checksums import verify_file
from nas_impl.data.paths import resolve_data_root
from nas_impl.errors import DataError, describe_os_error

EOS = "<eos>"
SUBDIR = "ptb"
FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
PUBLISHED_MD5 = {
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}
HOW_TO_GET = ("Copy ptb.train.txt, ptb.valid.txt and ptb.test.txt from Mikolov's simple-examples.tgz "
              "(data/) into <data root>/ptb/.")


class Vocabulary:
    """A bijection between words and ids 0..len-1, ids assigned in order of first `add`."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.word_to_id: dict[str, int] = {}
        self.id_to_word: list[str] = []
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        if word not in self.word_to_id:
            self.word_to_id[word] = len(self.id_to_word)
            self.id_to_word.append(word)
        return self.word_to_id[word]

    def __len__(self) -> int:
        return len(self.id_to_word)

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_id

    def encode(self, words: Iterable[str]) -> torch.Tensor:
        return torch.tensor([self.word_to_id[word] for word in words], dtype=torch.int64)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        return [self.id_to_word[int(i)] for i in ids]


@dataclass(frozen=True, eq=False)  # holds tensors: compare fields explicitly
class PennTreebank:
    """The vocabulary and the three splits as 1-D int64 token tensors."""

    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def _lines(path: Path) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8") as stream:
            return [line.split() + [EOS] for line in stream]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); this is not Mikolov's "
                        f"PTB file. {HOW_TO_GET}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix its permissions. {HOW_TO_GET}") from None


def _encode_known(vocab: Vocabulary, path: Path, lines: list[list[str]], train_name: str) -> torch.Tensor:
    ids: list[int] = []
    for number, words in enumerate(lines, start=1):
        for word in words:
            index = vocab.word_to_id.get(word)
            if index is None:
                raise DataError(f"{path} line {number}: word {word!r} does not occur in {train_name}; "
                                f"this is not Mikolov's PTB split (rare words there are <unk>). {HOW_TO_GET}")
            ids.append(index)
    return torch.tensor(ids, dtype=torch.int64)


def load_ptb(root: str | os.PathLike[str] | None = None, *, md5: Mapping[str, str] | None = None) -> PennTreebank:
    """Read and verify `<root>/ptb/ptb.{train,valid,test}.txt`; `md5` overrides the published table."""
    folder = resolve_data_root(root) / SUBDIR
    table = {**PUBLISHED_MD5, **(md5 or {})}
    paths = {split: folder / name for split, name in FILES.items()}
    how_to_get = HOW_TO_GET.replace("<data root>/ptb", str(folder))
    for path in paths.values():
        verify_file(path, table[path.name], "md5", how_to_get)

    train_lines = _lines(paths["train"])
    vocab = Vocabulary(word for words in train_lines for word in words)
    train = vocab.encode(word for words in train_lines for word in words)
    valid = _encode_known(vocab, paths["valid"], _lines(paths["valid"]), FILES["train"])
    test = _encode_known(vocab, paths["test"], _lines(paths["test"]), FILES["train"])
    return PennTreebank(vocab, train, valid, test)


# AutoShrink's RNN-search proxy (lordzth666/AutoShrink `data/penn_proxy`): the first lines of each split,
# byte for byte; the md5 of each cut, so that the rule is checked whenever the default cut is made.
PROXY_LINES = {"train": 4000, "valid": 300, "test": 300}
PROXY_MD5 = {"train": "cd399f2c44fc69a8f31ed728241e2e1b", "valid": "de27715837fa8dc1d12c83fa06c37e36",
             "test": "0a64318a0b48d5cf682f1d7a2f1a6a76"}


def load_ptb_proxy(root: str | os.PathLike[str] | None = None,
                   lines: Mapping[str, int] | None = None) -> tuple[PennTreebank, dict[str, str]]:
    """The first `lines[split]` lines of each verified PTB file (default PROXY_LINES), and the md5 of
    each cut. The vocabulary is the official search's `data.Corpus`: every word of train, valid and
    test in order of first occurrence (a prefix of valid can hold words the train prefix lacks)."""
    import hashlib

    ptb_root = resolve_data_root(root) / SUBDIR
    load_ptb(root)  # verifies the three files (and their checksums) before they are cut
    counts = {**PROXY_LINES, **(lines or {})}
    cut: dict[str, list[str]] = {}
    for split, name in FILES.items():
        with open(ptb_root / name, encoding="utf-8", newline="") as stream:
            cut[split] = [line for _, line in zip(range(counts[split]), stream)]
        if len(cut[split]) < counts[split]:
            raise DataError(f"{ptb_root / name} has {len(cut[split])} lines; the proxy asks for {counts[split]}: "
                            f"lower the search recipe's proxy_lines")
    digests = {split: hashlib.md5("".join(text).encode("utf-8")).hexdigest() for split, text in cut.items()}
    if counts == PROXY_LINES and digests != PROXY_MD5:
        raise DataError(f"the PTB proxy cut from {ptb_root} differs from the official penn_proxy files "
                        f"(md5 {digests} against {PROXY_MD5}). {HOW_TO_GET}")
    words = {split: [w for line in text for w in line.split() + [EOS]] for split, text in cut.items()}
    vocab = Vocabulary(w for split in ("train", "valid", "test") for w in words[split])
    return PennTreebank(vocab, *(vocab.encode(words[s]) for s in ("train", "valid", "test"))), digests


def batchify(tokens: torch.Tensor, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Cut a 1-D token stream into `batch_size` contiguous columns: a (T, B) tensor.

    The last len(tokens) % batch_size tokens are dropped, as in the standard LM setup.
    """
    if tokens.dim() != 1:
        raise ValueError(f"batchify expects a 1-D token tensor, got shape {tuple(tokens.shape)}")
    steps = len(tokens) // batch_size
    if batch_size < 1 or steps < 1:
        raise ValueError(f"cannot make {batch_size} columns from {len(tokens)} tokens")
    columns = tokens[: steps * batch_size].view(batch_size, steps).t().contiguous()
    return columns.to(device) if device is not None else columns


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows i..i+bptt of a batchified (T, B) tensor as input, and the same shifted by one as target.

    Both are (seq_len, B) with seq_len = min(bptt, T - 1 - i); flatten the target for the loss.
    """
    seq_len = min(bptt, len(source) - 1 - i)
    if seq_len < 1:
        raise ValueError(f"get_batch: position {i} leaves no target in a source of {len(source)} steps")
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len]
