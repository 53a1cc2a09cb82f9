"""The prior's data: a tokenizer's codes of a split, encoded once and cached, and their loader.

``codes_<split>.npz`` (in the prior folder, written atomically) holds
    ``codes``          int32 ``[N, T]`` (``-1``: token unused for that image),
    ``books``          int64 ``[T]``: the codebook serving each position (:func:`code_books`),
    ``codebook_size``  K.
The split is encoded in its stored order in fp32 (``encode`` is deterministic in eval mode).

:class:`CodeLoader` yields shuffled batches of a code tensor that lives on the training device,
with the same (seed, epoch) permutation recipe as :class:`qgvae.data.DeviceLoader`, and a
``state_dict`` for exact resumption.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunFolderError
from ..io import save_npz
from .model import Structure

CODES_FILE = "codes_{split}.npz"


def code_books(tokenizer) -> list[int]:
    """The codebook of every token position, numbered from 0.

    A tokenizer may say so itself (an attribute or method ``code_books`` returning ``[T]``
    ints); otherwise a ``quantiser`` with a ``book_index`` of length T
    (:class:`qgvae.models.quantise.VectorQuantiser`: one book per position for QG-VAE's
    individual codebooks, per group for split VQ); otherwise one shared codebook."""
    t = int(tokenizer.num_tokens)
    own = getattr(tokenizer, "code_books", None)
    if own is not None:
        books = own() if callable(own) else own
    else:
        index = getattr(getattr(tokenizer, "quantiser", None), "book_index", None)
        books = index if index is not None and len(index) == t else [0] * t
    books = [int(b) for b in (books.tolist() if torch.is_tensor(books) else books)]
    if len(books) != t:
        raise ValueError(f"code_books has {len(books)} entries for {t} tokens")
    # renumber 0.. in order of first appearance (a tokenizer may number its books sparsely)
    ids: dict[int, int] = {}
    return [ids.setdefault(b, len(ids)) for b in books]


@torch.no_grad()
def encode_images(tokenizer, images_u8: torch.Tensor, *, batch_size: int, device) -> np.ndarray:
    """Codes ``int32 [N, T]`` of uint8 images ``[N, C, H, W]`` (batched, fp32, in order)."""
    out = []
    for start in range(0, len(images_u8), batch_size):
        x = images_u8[start : start + batch_size].to(device).float().div_(255)
        out.append(tokenizer.encode(x).to(torch.int32).cpu())
    codes = torch.cat(out).numpy()
    k = int(tokenizer.codebook_size)
    if codes.size and (codes.min() < -1 or codes.max() >= k):
        raise RunFolderError(
            f"the tokenizer's encode returned codes outside [-1, {k}): {codes.min()}..{codes.max()}"
        )
    return codes


def save_codes(folder: Path, split: str, codes: np.ndarray, books, codebook_size: int) -> Path:
    path = Path(folder) / CODES_FILE.format(split=split)
    save_npz(
        path,
        codes=np.ascontiguousarray(codes, dtype=np.int32),
        books=np.asarray(books, dtype=np.int64),
        codebook_size=np.int64(codebook_size),
    )
    return path


def load_codes(folder: Path, split: str) -> tuple[np.ndarray, list[int], int]:
    """``(codes int32 [N, T], books, K)`` of a prior folder's cached split."""
    path = Path(folder) / CODES_FILE.format(split=split)
    fix = f"re-encode with `qgvae prior encode RUN --out {folder}`"
    if not path.is_file():
        raise RunFolderError(f"{path} not found; {fix}")
    try:
        with np.load(path, allow_pickle=False) as z:
            codes, books, k = z["codes"], z["books"].tolist(), int(z["codebook_size"])
    except (OSError, ValueError, KeyError) as exc:
        raise RunFolderError(f"{path} is unreadable ({type(exc).__name__}); {fix}") from None
    if codes.ndim != 2 or codes.shape[1] != len(books):
        raise RunFolderError(f"{path}: codes {codes.shape} do not match {len(books)} books; {fix}")
    return codes, books, k


def structure_of(train: np.ndarray, test: np.ndarray, books, codebook_size: int) -> Structure:
    """What the prior models; an "unused" symbol exists when either split has a ``-1``."""
    unused = bool((train < 0).any() or (test < 0).any())
    return Structure(
        num_tokens=len(books),
        codebook_size=int(codebook_size),
        books=tuple(int(b) for b in books),
        unused_symbol=unused,
    )


class CodeLoader:
    """Shuffled batches of a ``[N, T]`` LongTensor that lives on the training device.

    Epoch ``e``'s order is ``torch.randperm(N)`` from a generator on the codes' device seeded
    with ``SeedSequence([seed, e])`` (as :class:`qgvae.data.DeviceLoader`); incomplete last
    batches are dropped. ``epoch`` / ``batch_index`` name the next batch.
    """

    def __init__(self, codes: torch.Tensor, *, batch_size: int, seed: int) -> None:
        if codes.dim() != 2:
            raise TypeError(f"codes must be [N, T], got {tuple(codes.shape)}")
        self.codes = codes
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.epoch, self.batch_index = 0, 0
        if len(self) == 0:
            raise ValueError(f"{len(codes)} sequences give no batch of {self.batch_size}")

    def __len__(self) -> int:
        return len(self.codes) // self.batch_size

    def order(self, epoch: int) -> torch.Tensor:
        state = np.random.SeedSequence([self.seed, int(epoch)]).generate_state(2, np.uint32)
        gen = torch.Generator(device=self.codes.device)
        gen.manual_seed(((int(state[0]) << 32) | int(state[1])) & ((1 << 63) - 1))
        return torch.randperm(len(self.codes), generator=gen, device=self.codes.device)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """The rest of the current epoch."""
        epoch, order, bs = self.epoch, self.order(self.epoch), self.batch_size
        for b in range(self.batch_index, len(self)):
            self.batch_index = b + 1
            if self.batch_index == len(self):
                self.epoch, self.batch_index = epoch + 1, 0
            yield self.codes.index_select(0, order[b * bs : (b + 1) * bs])

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "num_sequences": len(self.codes),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = {"seed": self.seed, "batch_size": self.batch_size, "num_sequences": len(self.codes)}
        for key, value in mine.items():
            if state.get(key) != value:
                raise ValueError(
                    f"loader state has {key}={state.get(key)!r}, this loader {value!r}"
                )
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])
