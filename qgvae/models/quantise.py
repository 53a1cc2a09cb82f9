"""Nearest-codeword vector quantisation with per-position, shared or multi-group codebooks.

One module, :class:`VectorQuantiser`, covers every quantiser of the benchmark:

- ``codebook="individual"``: QG-VAE's setting, one codebook per token position (the authors'
  ``[C, K, D]`` tensor);
- ``codebook="shared"``: one codebook for all positions (the classic VQ-VAE);
- ``groups > 1``: multi-group / split VQ (MGVQ, Strong et al. 2021): each ``D``-vector is cut into
  ``groups`` sub-vectors of ``D / groups``, and every group has its own codebook.

A *slot* is one (token, group) pair; slots are numbered token-major, ``slot = t * groups + g``,
and ``book_index[slot]`` names the codebook that serves it. Everything is vectorised over slots
(batched matmul over ``[T * groups]`` books): there is no Python loop over tokens or codewords.

Straight-through estimator, no EMA; loss weights follow the authors' code (0.25 on the codebook
term, 1.0 on the commitment term). Distances, argmin and both loss terms are computed in float32
even under bf16 autocast. The gradient-based codebook reset is the authors' (see
:meth:`VectorQuantiser.reset_unused`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "QuantiserOutput",
    "VectorQuantiser",
    "squared_distances",
    "straight_through",
    "code_perplexity",
]


# -- kernels shared by every quantiser of the benchmark (QG-VAE and the baselines) ----------
def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``||a_i - b_j||^2`` in float32: ``a [..., M, D]``, ``b [..., N, D]`` -> ``[..., M, N]``.

    Expanded as ``||a||^2 + ||b||^2 - 2 a.b`` (one matmul) and clamped at 0 against round-off.
    Leading dimensions broadcast (e.g. one codebook ``[K, D]`` against ``[P, N, D]`` latents).
    """
    a, b = a.float(), b.float()
    cross = torch.matmul(a, b.transpose(-1, -2))
    return (
        a.square().sum(-1)[..., :, None] + b.square().sum(-1)[..., None, :] - 2.0 * cross
    ).clamp_min(0.0)


def straight_through(z: Tensor, e: Tensor) -> Tensor:
    """The straight-through estimator: the value of ``e``, the gradient of ``z``.

    The same gradient as ``z + (e - z).detach()``, but written so that the value is exactly ``e``
    (``z - z.detach() == 0``), hence bit-identical to decoding the codes of ``e``.
    """
    return e.detach() + (z - z.detach())


@torch.no_grad()
def code_perplexity(
    codes: Tensor, codebook_size: int, book_index: Tensor | None = None, num_books: int = 1
) -> Tensor:
    """Mean over codebooks of ``exp(entropy)`` of this batch's code histogram (0-d, detached).

    ``codes [B, S]`` (entries ``< 0`` are unused tokens and ignored); ``book_index [S]`` names
    the codebook of each slot (None: one codebook for every slot). The histogram is a
    ``scatter_add`` into a fixed ``[num_books * K]`` table: no shape depends on the data, so no
    training step waits on the device for it and a compiled step has no graph break here
    (``bincount`` reads the largest code back to size its output). A codebook with no valid
    entry has perplexity 1.
    """
    valid = codes >= 0
    flat = torch.where(valid, codes, 0)
    if book_index is not None:
        flat = flat + book_index * codebook_size
    counts = torch.zeros(num_books * codebook_size, device=codes.device, dtype=torch.float32)
    counts.scatter_add_(0, flat.reshape(-1), valid.reshape(-1).float())
    p = counts.reshape(num_books, codebook_size)
    p = p / p.sum(-1, keepdim=True).clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(-1)).mean()


@dataclass
class QuantiserOutput:
    """What :meth:`VectorQuantiser.forward` returns.

    quantised:     ``[B, T, D]`` in z's dtype; the straight-through output. Its value is the
                   chosen codeword (plus the learned per-token offset when enabled); its gradient
                   w.r.t. ``z`` is the identity (``z + (e - z).detach()``).
    codes:         ``LongTensor [B, T * groups]``: code index per (token, group), token-major.
    loss_codebook: scalar, ``beta_codebook * mean ||sg[z] - e||^2`` (moves the codewords).
    loss_commit:   scalar, ``beta_commit * mean ||z - sg[e]||^2`` (moves the encoder).
    perplexity:    0-d detached tensor, mean over codebooks of ``exp(entropy)`` of this batch's
                   code histogram (a tensor, so that no step waits on the device for it).
    """

    quantised: Tensor
    codes: Tensor
    loss_codebook: Tensor
    loss_commit: Tensor
    perplexity: Tensor


class VectorQuantiser(nn.Module):
    """Nearest-codeword quantiser for ``[B, T, D]`` token tensors.

    Args (keyword-only):
        num_tokens:    T, number of token positions per sample.
        dim:           D, dimension of each token.
        codebook_size: K, codewords per codebook.
        codebook:      ``"individual"``: one codebook per token position (QG-VAE, the authors'
                       ``[C, K, D]`` tensor); ``"shared"``: one codebook for all positions (per
                       group when ``groups > 1``).
        groups:        multi-group quantisation (MGVQ / split VQ): each D-vector is split into
                       ``groups`` contiguous sub-vectors of ``D / groups`` dims, each quantised
                       with its own codebook. The code rate becomes ``T * groups * log2(K)``.
        offset:        add a learned per-token offset ``[T, D]`` after quantisation (authors'
                       code). It is part of the decoder input, not of the nearest-codeword search.
        beta_codebook: weight of the codebook term ``||sg[z] - e||^2`` (authors: 0.25).
        beta_commit:   weight of the commitment term ``||z - sg[e]||^2`` (authors: 1.0).
        init_range:    codebooks and offset are initialised ``U(-init_range, init_range)``
                       (authors: 0.5).

    Attributes:
        codebooks:  ``nn.Parameter [num_books, K, D / groups]``; ``num_books = T * groups``
                    (individual) or ``groups`` (shared).
        offset:     ``nn.Parameter [T, D]`` or ``None``.
        book_index: ``LongTensor [T * groups]`` buffer: codebook serving each (token, group) slot.
        usage:      ``float [num_books, K]`` buffer: gradient magnitude accumulated by
                    :meth:`accumulate_usage` since the last :meth:`reset_unused`.
        split_threshold: a codeword is only split by a reset if its usage exceeds this
                    (the authors' ``EPSILON = 1e-6``); a class attribute, override per instance.
    """

    split_threshold: float = 1e-6

    def __init__(
        self,
        *,
        num_tokens: int,
        dim: int,
        codebook_size: int = 512,
        codebook: str = "individual",
        groups: int = 1,
        offset: bool = True,
        beta_codebook: float = 0.25,
        beta_commit: float = 1.0,
        init_range: float = 0.5,
    ) -> None:
        super().__init__()
        if num_tokens < 1 or dim < 1 or codebook_size < 1 or groups < 1:
            raise ValueError(
                f"num_tokens, dim, codebook_size and groups must be >= 1, got "
                f"{num_tokens}, {dim}, {codebook_size}, {groups}"
            )
        if dim % groups:
            raise ValueError(f"dim ({dim}) must be divisible by groups ({groups})")
        if codebook not in ("individual", "shared"):
            raise ValueError(f"codebook must be 'individual' or 'shared', got {codebook!r}")
        self.num_tokens, self.dim, self.codebook_size = num_tokens, dim, codebook_size
        self.codebook, self.groups = codebook, groups
        self.beta_codebook, self.beta_commit = float(beta_codebook), float(beta_commit)
        self.sub_dim = dim // groups
        self.num_slots = num_tokens * groups
        self.num_books = self.num_slots if codebook == "individual" else groups

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter((torch.rand(*shape) * 2.0 - 1.0) * init_range)

        self.codebooks = uniform(self.num_books, codebook_size, self.sub_dim)
        self.offset = uniform(num_tokens, dim) if offset else None
        slots = torch.arange(self.num_slots)
        book_index = slots if codebook == "individual" else slots % groups
        self.register_buffer("book_index", book_index, persistent=False)
        self.register_buffer("usage", torch.zeros(self.num_books, codebook_size))

    def extra_repr(self) -> str:
        return (
            f"num_tokens={self.num_tokens}, dim={self.dim}, codebook_size={self.codebook_size},"
            f" codebook={self.codebook!r}, groups={self.groups}, "
            f"offset={self.offset is not None}"
        )

    # -- core, all in float32 -------------------------------------------------------------
    def _slots(self, z: Tensor) -> Tensor:
        """``[B, T, D]`` -> float32 ``[B, T * groups, D / groups]`` (token-major slots)."""
        if z.dim() != 3 or z.shape[1] != self.num_tokens or z.shape[2] != self.dim:
            raise ValueError(
                f"expected z of shape [B, {self.num_tokens}, {self.dim}], got {tuple(z.shape)}"
            )
        return z.float().reshape(z.shape[0], self.num_slots, self.sub_dim)

    @torch.no_grad()
    def _argmin(self, zs: Tensor) -> Tensor:
        """Nearest codeword of each slot: ``[B, S, d]`` float32 -> ``LongTensor [B, S]``.

        ``||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2``; the ``||z||^2`` term is the same for every
        codeword of a slot, so it is left out of the argmin. One batched matmul over slots.
        """
        books = self.codebooks.detach().float()
        if self.codebook == "shared":
            books = books[self.book_index]  # [S, K, d]
        cross = torch.bmm(zs.transpose(0, 1), books.transpose(1, 2))  # [S, B, K]
        dist = books.square().sum(-1)[:, None, :] - 2.0 * cross
        return dist.argmin(-1).transpose(0, 1).contiguous()  # [B, S]

    def _embed(self, codes: Tensor) -> Tensor:
        """Codewords of ``codes [B, S]`` -> float32 ``[B, S, d]`` (differentiable w.r.t. books).

        ``F.embedding`` rather than ``books[flat]``: the two gather the same rows, but indexing
        back-propagates through ``index_put_(accumulate=True)``, which on a multi-threaded CPU
        sums colliding rows with unordered atomic adds, so that a seeded run differed from its
        repeat. Embedding's backward sums in a fixed order on CPU and CUDA.
        """
        flat = self.book_index * self.codebook_size + codes  # [B, S]
        return F.embedding(flat, self.codebooks.float().reshape(-1, self.sub_dim))

    def _finish(self, e: Tensor) -> Tensor:
        """Slots ``[B, S, d]`` -> tokens ``[B, T, D]`` plus the learned offset (float32)."""
        q = e.reshape(e.shape[0], self.num_tokens, self.dim)
        return q + self.offset.float() if self.offset is not None else q

    # -- public API ---------------------------------------------------------------------------
    def forward(self, z: Tensor) -> QuantiserOutput:
        """Quantise ``z [B, T, D]``; see :class:`QuantiserOutput`."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            zs = self._slots(z)
            codes = self._argmin(zs)
            e = self._embed(codes)
            loss_codebook = self.beta_codebook * (zs.detach() - e).square().mean()
            loss_commit = self.beta_commit * (zs - e.detach()).square().mean()
            q = self._finish(straight_through(zs, e))
            perplexity = code_perplexity(codes, self.codebook_size, self.book_index, self.num_books)
        return QuantiserOutput(q.to(z.dtype), codes, loss_codebook, loss_commit, perplexity)

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """Code indices ``LongTensor [B, T * groups]`` of ``z [B, T, D]`` (no gradient)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._argmin(self._slots(z))

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes ``[B, T * groups]`` -> float32 tokens ``[B, T, D]``, offset included.

        Equal (bit for bit, up to the dtype cast) to ``forward(z).quantised`` for the same codes.
        """
        if codes.dim() != 2 or codes.shape[1] != self.num_slots:
            raise ValueError(
                f"expected codes of shape [B, {self.num_slots}], got {tuple(codes.shape)}"
            )
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self._finish(self._embed(codes.long()))

    @torch.no_grad()
    def accumulate_usage(self) -> None:
        """``usage += mean_d |dL/d codebooks|`` (the authors' gradient magnitude per codeword).

        Call once per optimiser step, after ``backward()`` and before the gradients are zeroed.
        No-op when the codebooks have no gradient.
        """
        grad = self.codebooks.grad
        if grad is not None:
            self.usage += grad.detach().abs().float().mean(-1)

    @torch.no_grad()
    def reset_unused(self, noise: float = 1e-4) -> int:
        """The authors' codebook reset; returns the number of codewords moved, zeroes ``usage``.

        Per codebook, the codeword with the smallest usage (which must be exactly 0: unused) is
        paired with the one with the largest usage, the second-smallest with the second-largest,
        and so on; each unused codeword becomes a copy of its partner plus ``U(-noise, noise)``.
        A loaded codeword is split at most once per reset, only codewords with usage above
        ``split_threshold`` are split, so a codebook moves ``min(#unused, #loaded)`` codewords.
        Used codewords are never modified. Ties are broken by index (like argmin / argmax).
        Vectorised: two stable argsorts, a mask and one scatter.
        """
        usage = self.usage
        ascending = usage.argsort(dim=1, stable=True)  # unused (0) first
        descending = usage.argsort(dim=1, descending=True, stable=True)  # most loaded first
        n_unused = (usage == 0).sum(1)
        n_loaded = (usage > self.split_threshold).sum(1)
        n_moves = torch.minimum(n_unused, n_loaded)  # [num_books]
        rank = torch.arange(self.codebook_size, device=usage.device)
        move = rank[None, :] < n_moves[:, None]  # [num_books, K]: the j-th pair is moved
        book = torch.arange(self.num_books, device=usage.device)[:, None].expand_as(move)[move]
        dst, src = ascending[move], descending[move]
        books = self.codebooks.data
        jitter = (torch.rand(dst.numel(), self.sub_dim, device=books.device) * 2.0 - 1.0) * noise
        books[book, dst] = books[book, src] + jitter.to(books.dtype)
        usage.zero_()
        return int(dst.numel())
