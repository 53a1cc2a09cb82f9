"""The prior: a decoder-only (GPT-style) transformer over a tokenizer's code sequence.

Sequence layout: an image's codes ``c_0 .. c_{T-1}`` (QG-VAE: token order 0..C-1; grid methods:
the raster order their ``encode`` returns). The input at position ``i`` is a learned start
vector for ``i = 0`` and the embedding of ``c_{i-1}`` otherwise, plus a learned positional
embedding; the output at position ``i`` is the distribution of ``c_i``. So ``logits[:, i]``
never depends on ``c_i`` or anything after it (the causality test checks this).

Code embeddings and output layers are per *book*: ``books[t]`` names the codebook that serves
position ``t`` (:func:`qgvae.prior.data.code_books`). QG-VAE has one codebook per position, so
code 17 at position 3 and code 17 at position 4 get different embeddings and different output
rows; a grid VQ-VAE has one shared codebook, so all positions share one table and one head.
A symbol ``K`` (``vocab = K + 1``) stands for an unused token (code ``-1``, DQ-VAE's unrefined
regions) when the training codes contain any.

Deviations from minGPT (Karpathy), which the paper's appendix H used with unstated sizes:
- per-book embedding tables and output heads (minGPT: one token table and one ``lm_head``);
- a learned start vector instead of a start token id in the vocabulary;
- no bias in the output heads (as minGPT's ``lm_head``); attention through
  ``torch.nn.functional.scaled_dot_product_attention``, with a key/value cache for sampling;
- sizes: our defaults (width 256, 8 layers, 8 heads, dropout 0.1) are ours: the paper gives
  none. On CIFAR-10's 64 codes of K = 512 that is 6.6 M parameters with one shared codebook
  (VQ-VAE) and 23.1 M with QG-VAE's 64 per-position codebooks, whose embedding tables and
  output layers (2 x 64 x 512 x 256) dominate; the transformer itself is the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Structure:
    """What the prior models: ``num_tokens`` positions, ``codebook_size`` codes per position,
    ``books[t]`` (the codebook of position t) and whether an "unused token" symbol exists."""

    num_tokens: int
    codebook_size: int
    books: tuple[int, ...]
    unused_symbol: bool = False

    @property
    def vocab(self) -> int:
        return self.codebook_size + int(self.unused_symbol)

    @property
    def num_books(self) -> int:
        return max(self.books) + 1

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "books": list(self.books)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Structure:
        return cls(
            num_tokens=int(data["num_tokens"]),
            codebook_size=int(data["codebook_size"]),
            books=tuple(int(b) for b in data["books"]),
            unused_symbol=bool(data.get("unused_symbol", False)),
        )


class KVCache:
    """Keys and values of every layer for ``batch`` sequences of up to ``length`` positions."""

    def __init__(self, layers: int, batch: int, heads: int, length: int, head_dim: int, like):
        shape = (batch, heads, length, head_dim)
        self.k = [like.new_zeros(shape) for _ in range(layers)]
        self.v = [like.new_zeros(shape) for _ in range(layers)]
        self.length = 0  # positions filled


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.attn_dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        b, n, w = x.shape
        q, k, v = self.qkv(x).split(w, dim=2)
        q, k, v = (t.view(b, n, self.heads, w // self.heads).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.attn_dropout if self.training else 0.0
            )
        else:
            if n != 1:
                raise ValueError("the KV cache is filled one position at a time")
            pos = cache.length
            cache.k[layer][:, :, pos] = k[:, :, 0]
            cache.v[layer][:, :, pos] = v[:, :, 0]
            # one query against every key so far: the causal mask is the slice itself
            k, v = cache.k[layer][:, :, : pos + 1], cache.v[layer][:, :, : pos + 1]
            y = F.scaled_dot_product_attention(q, k, v)
        y = y.transpose(1, 2).reshape(b, n, w)
        return self.resid_dropout(self.proj(y))


class Block(nn.Module):
    """Pre-LayerNorm transformer block (minGPT): attention, then a 4x GELU MLP."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width),
            nn.GELU(),
            nn.Linear(4 * width, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class TokenPrior(nn.Module):
    """p(c_0 .. c_{T-1}) = prod_t p(c_t | c_<t), a decoder-only transformer.

    Args (keyword-only): ``structure`` (:class:`Structure`), ``width`` (embedding size),
    ``layers``, ``heads`` (``width`` must be a multiple), ``dropout`` (embedding, attention,
    residual; minGPT's 0.1).
    """

    def __init__(
        self,
        *,
        structure: Structure,
        width: int = 256,
        layers: int = 8,
        heads: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        if len(structure.books) != structure.num_tokens:
            raise ValueError("books must name one codebook per token position")
        self.structure = structure
        self.width, self.layers, self.heads = width, layers, heads
        t, vocab, nb = structure.num_tokens, structure.vocab, structure.num_books
        self.register_buffer("books", torch.tensor(structure.books), persistent=False)
        self.start = nn.Parameter(torch.zeros(width))
        self.tok_emb = nn.Embedding(nb * vocab, width)  # row books[t] * vocab + code
        self.pos_emb = nn.Parameter(torch.zeros(t, width))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Parameter(torch.zeros(nb, vocab, width))  # per-book output layer
        self._init_weights()

    def _init_weights(self) -> None:
        """minGPT's initialisation: N(0, 0.02), zero biases, residual projections scaled by
        1/sqrt(2 * layers)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.layers))
        for p in (self.start, self.pos_emb, self.head):
            nn.init.normal_(p, mean=0.0, std=0.02)

    # ------------------------------------------------------------------ symbols <-> codes
    def to_symbols(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (``-1`` = unused token) -> symbols in ``[0, vocab)``."""
        if self.structure.unused_symbol:
            return torch.where(codes < 0, self.structure.codebook_size, codes)
        return codes

    def to_codes(self, symbols: torch.Tensor) -> torch.Tensor:
        if self.structure.unused_symbol:
            return torch.where(symbols == self.structure.codebook_size, -1, symbols)
        return symbols

    # ------------------------------------------------------------------ full sequences
    def _embed(self, symbols: torch.Tensor, pos: int | slice) -> torch.Tensor:
        """Embedding of ``symbols`` (codes of the positions *before* ``pos``) at ``pos``."""
        books = self.books[: symbols.shape[1]] if isinstance(pos, slice) else self.books[pos - 1]
        return self.tok_emb(books * self.structure.vocab + symbols)

    def _logits(self, h: torch.Tensor, positions: torch.Tensor | int) -> torch.Tensor:
        if self.structure.num_books == 1:
            return h @ self.head[0].t()
        if isinstance(positions, int):
            return h @ self.head[self.books[positions]].t()
        weight = self.head[self.books[positions]]  # [T, vocab, width]
        return torch.einsum("btw,tvw->btv", h, weight)

    def forward(self, symbols: torch.Tensor) -> torch.Tensor:
        """Symbols ``[B, T]`` -> logits ``[B, T, vocab]``; ``logits[:, t]`` predicts
        ``symbols[:, t]`` from ``symbols[:, :t]``."""
        b, t = symbols.shape
        x = self.start.expand(b, 1, -1)
        if t > 1:
            x = torch.cat([x, self._embed(symbols[:, :-1], slice(1, t))], dim=1)
        x = self.drop(x + self.pos_emb[:t])
        for block in self.blocks:
            x = block(x)
        return self._logits(self.ln_f(x), torch.arange(t, device=symbols.device))

    # ------------------------------------------------------------------ one position at a time
    def new_cache(self, batch: int) -> KVCache:
        return KVCache(
            self.layers,
            batch,
            self.heads,
            self.structure.num_tokens,
            self.width // self.heads,
            self.pos_emb,
        )

    def step(self, previous: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """Logits ``[B, vocab]`` of the next position (``cache.length``), given the symbol of
        the position before it (``None`` at position 0). Appends to the cache."""
        pos = cache.length
        if pos >= self.structure.num_tokens:
            raise ValueError(f"the sequence is complete ({pos} positions)")
        if pos == 0:
            x = self.start.expand(len(cache.k[0]), -1)
        else:
            x = self._embed(previous, pos)
        x = self.drop(x + self.pos_emb[pos]).unsqueeze(1)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        cache.length = pos + 1
        return self._logits(self.ln_f(x[:, 0]), pos)


def build_prior(structure: Structure, arch: Mapping[str, Any]) -> TokenPrior:
    """A prior for ``structure`` with the sizes of a settings' ``prior`` section."""
    return TokenPrior(
        structure=structure,
        width=int(arch["width"]),
        layers=int(arch["layers"]),
        heads=int(arch["heads"]),
        dropout=float(arch["dropout"]),
    )


def decay_groups(model: TokenPrior, weight_decay: float) -> list[dict[str, Sequence]]:
    """minGPT's AdamW parameter groups: weight decay on the matrices of Linear layers and the
    output heads; none on biases, LayerNorms, embeddings, the start vector."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if (isinstance(module, nn.Linear) and name == "weight") or full == "head":
                decay.append(p)
            else:
                no_decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
