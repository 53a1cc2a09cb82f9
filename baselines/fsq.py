"""FSQ, finite scalar quantisation (Mentzer, Minnen, Agustsson, Tschannen 2023, "Finite Scalar
Quantization: VQ-VAE Made Simple"), on the shared grid network.

Registry name ``fsq``. Quantiser: ``vector_quantize_pytorch.FSQ`` (1.34.1). Each grid cell's
``code_dim``-vector is projected (a learned Linear, the library's ``project_in``) to
``len(levels)`` scalars; scalar ``i`` is bounded by ``tanh`` and rounded to one of ``levels[i]``
values (straight-through rounding); the implicit codebook is the grid of all combinations, so a
cell codes ``log2(prod(levels))`` bits; a Linear ``project_out`` maps back to ``code_dim``. No
codebook, no auxiliary loss: the only loss term is ``mse``.

Rate: ``cells * log2(prod(levels))`` bits (:meth:`FSQVAE.bits_per_image`). ``codebook_size``
states the asked codebook (as for every other method) and must equal ``prod(levels)``, so that
levels that miss the asked rate stop the plan with one line naming both keys. Table 1's 576
bits: levels (8, 8, 8) = 512 codes on the 8x8 grid (64 x 9).

Settings (constructor arguments, recorded in the run's config.yaml):
    ``codebook_size``     512, must equal ``prod(levels)``;
    ``levels``            quantisation levels per projected dimension (default (8, 8, 8); the
                          FSQ paper's recommendation for 2^9 codes is not given, 8^3 is exact);
    ``preserve_symmetry`` the library's symmetry-preserving bound (Sec. 3.2 of arXiv 2411.19842),
                          library default False; False rejects a level of 2 (the library asserts
                          it; we stop the plan with one line first);
    ``noise_dropout``     library default 0.0 (no noise substitution);
    ``init``, network     as :mod:`baselines.vqvae` (``init`` applies to the conv layers only).
Library settings fixed here (the library's defaults unless marked): ``channel_first=False``
(tokens, not maps), ``num_codebooks=1``, ``projection_has_bias=True``, ``scale=None``,
``force_quantization_f32=True`` and, beyond it, the whole quantiser in fp32 (the library's
forcing covers CUDA only; issue #114), ``bound_hard_clamp=False``, ``orthogonal_rotation=False``,
``return_indices=True``.
"""

from __future__ import annotations

import math

from torch import Tensor

from .libvq import LibraryQuantisedGrid

__all__ = ["FSQVAE", "check_levels"]


def check_levels(levels, preserve_symmetry: bool) -> tuple[int, ...]:
    """The levels as a tuple of ints, or ValueError naming ``model.levels``."""
    try:
        out = tuple(int(v) for v in levels)
    except (TypeError, ValueError):
        raise ValueError(f"model.levels must be a list of integers, got {levels!r}") from None
    if not out or any(v != w for v, w in zip(out, levels)):
        raise ValueError(f"model.levels must be a non-empty list of integers, got {levels!r}")
    if min(out) < 2:
        raise ValueError(f"model.levels must all be >= 2, got {list(out)}")
    if 2 in out and not preserve_symmetry:
        raise ValueError(
            f"model.levels {list(out)} has a level of 2, which FSQ's default bound cannot "
            "represent (the library asserts): use levels >= 3 or set model.preserve_symmetry: true"
        )
    return out


class FSQVAE(LibraryQuantisedGrid):
    """FSQ on the shared grid network. See the module docstring."""

    display_name = "FSQ"

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        channels: int = 128,
        res_blocks: int = 2,
        res_channels: int = 32,
        downsample: int = 2,
        code_dim: int = 64,
        network: str = "grid",
        init: str = "released",
        codebook_size: int = 512,
        levels: tuple = (8, 8, 8),
        preserve_symmetry: bool = False,
        noise_dropout: float = 0.0,
    ) -> None:
        from vector_quantize_pytorch import FSQ

        self.levels = check_levels(levels, preserve_symmetry)
        if math.prod(self.levels) != codebook_size:
            raise ValueError(
                f"model.levels {list(self.levels)} give {math.prod(self.levels)} codes "
                f"({math.log2(math.prod(self.levels)):.3g} bits), but model.codebook_size asks "
                f"{codebook_size}: FSQ's codebook is the product of its levels"
            )
        super().__init__(
            in_channels=in_channels,
            image_size=image_size,
            channels=channels,
            res_blocks=res_blocks,
            res_channels=res_channels,
            downsample=downsample,
            code_dim=code_dim,
            codebook_size=codebook_size,
            network=network,
        )
        self.quantiser = FSQ(
            levels=list(self.levels),
            dim=code_dim,
            num_codebooks=1,
            keep_num_codebooks_dim=False,
            scale=None,
            channel_first=False,
            projection_has_bias=True,
            return_indices=True,
            force_quantization_f32=True,
            preserve_symmetry=preserve_symmetry,
            noise_dropout=noise_dropout,
            bound_hard_clamp=False,
            orthogonal_rotation=False,
        )
        self.finish_build(init)

    def bits_per_image(self) -> float:
        """``cells * sum(log2(level))`` = ``cells * log2(prod(levels))``."""
        return self.cells * sum(math.log2(v) for v in self.levels)

    def _quantise(self, z: Tensor, *, freeze: bool = False):
        out, indices = self.quantiser(z)
        return out, indices.long(), {}, {}

    def lookup(self, codes: Tensor) -> Tensor:
        return self.quantiser.indices_to_codes(codes)
