"""LFQ, lookup-free quantisation (Yu et al. 2023, "Language Model Beats Diffusion - Tokenizer is
Key to Visual Generation", MAGVIT-v2), on the shared grid network.

Registry name ``lfq``. Quantiser: ``vector_quantize_pytorch.LFQ`` (1.34.1). Each grid cell's
``code_dim``-vector is projected (the library's learned ``project_in``) to ``log2(K)`` scalars,
each quantised to its sign (``+-codebook_scale``, straight-through); the code index is the
binary number of the signs (first dimension = most significant bit); ``project_out`` maps back
to ``code_dim``. An entropy penalty keeps the codes confident per sample and spread over the
batch: ``entropy_loss_weight * (H[p(code | z)] - diversity_gamma * H[mean p(code)])`` with
``p = softmax(inv_temperature * 2 z.c)`` over all ``K`` codes ``c``.

Rate: ``cells * log2(codebook_size)`` bits; ``codebook_size`` must be a power of 2 (the library
asserts it; we stop the plan with one line naming ``model.codebook_size`` first). Table 1's 576
bits: K = 512 (9 bits) on the 8x8 grid.

Loss terms: ``mse``; ``lfq_aux`` = the library's auxiliary loss (entropy term above plus
``commitment_loss_weight * mean ||z - sg[sign(z)]||^2``). Stats: ``per_sample_entropy``,
``batch_entropy`` (nats, this batch).

Settings (constructor arguments, recorded in the run's config.yaml) and the library's defaults:

==========================  ======  =========  =================================================
argument                    ours    library    note
==========================  ======  =========  =================================================
``codebook_size``           512     2^dim      Table 1's K
``entropy_loss_weight``     0.1     0.1
``commitment_loss_weight``  0.1     0.0        (see below)
``inv_temperature``         1.0     100.0      an argument of the library's forward (see below)
``diversity_gamma``         1.0     1.0
``frac_per_sample_entropy`` 1.0     1.0
``codebook_scale``          1.0     1.0
``spherical``               False   False      True: BSQ (arXiv 2406.07548)
==========================  ======  =========  =================================================

Why two settings differ from the library's (measured at the quick scale: ``photos``, the grid
network 32 wide, code_dim 16, K 64, Adam 1e-3, batch 16, 500 steps, one seed; validation PSNR,
the mean image's 14.4 dB; at 384 bits = 8x8 cells and 96 bits = 4x4 cells): with the library's
``inv_temperature`` 100 the entropy softmax is saturated (logit gaps of 400 between codes at
``|z| = 1``), so the entropy term has no gradient; without a commitment term the projected inputs
then grow until every token takes the same code (16.6 dB at step 100, one code and 10.7 dB by
step 500; with code_dim 6, i.e. no projection, the same); with commitment 0.25 but temperature
100, two codes in use (14.5 dB). With temperature 1, commitment 0.05 / 0.1 / 0.25 gave 20.1 /
20.5 / 19.5 dB at 384 bits and 19.6 / 19.2 / 17.1 dB at 96 bits. (The
xyfJASON/visual-tokenizer-pytorch README marks LFQ as not working as expected.)

Library settings fixed here: ``num_codebooks=1``, ``channel_first=False`` (tokens),
``has_projections`` (implied: ``code_dim != log2 K``), ``projection_has_bias=True``,
``soft_clamp_input_value=None``, ``cosine_sim_project_in=False``,
``experimental_softplus_entropy_loss=False``, ``orthogonal_rotation=False``,
``force_quantization_f32=True`` and the whole quantiser in fp32 (:mod:`baselines.libvq`).
"""

from __future__ import annotations

from torch import Tensor

from .libvq import LibraryQuantisedGrid, power_of_two

__all__ = ["LFQVAE"]


class LFQVAE(LibraryQuantisedGrid):
    """LFQ on the shared grid network. See the module docstring."""

    display_name = "LFQ"

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
        codebook_size: int = 512,
        network: str = "grid",
        init: str = "released",
        entropy_loss_weight: float = 0.1,
        commitment_loss_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        inv_temperature: float = 1.0,
        frac_per_sample_entropy: float = 1.0,
        codebook_scale: float = 1.0,
        spherical: bool = False,
    ) -> None:
        from vector_quantize_pytorch import LFQ

        if not power_of_two(codebook_size) or codebook_size < 2:
            raise ValueError(
                f"model.codebook_size = {codebook_size} is not a power of 2 >= 2: LFQ codes "
                f"log2(K) sign bits (e.g. 512 for 9 bits)"
            )
        if not 0.0 < frac_per_sample_entropy <= 1.0:
            raise ValueError(
                f"model.frac_per_sample_entropy must be in (0, 1], got {frac_per_sample_entropy}"
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
        self.inv_temperature = float(inv_temperature)
        self.quantiser = LFQ(
            dim=code_dim,
            codebook_size=codebook_size,
            entropy_loss_weight=entropy_loss_weight,
            commitment_loss_weight=commitment_loss_weight,
            diversity_gamma=diversity_gamma,
            num_codebooks=1,
            keep_num_codebooks_dim=False,
            codebook_scale=codebook_scale,
            frac_per_sample_entropy=frac_per_sample_entropy,
            projection_has_bias=True,
            soft_clamp_input_value=None,
            cosine_sim_project_in=False,
            channel_first=False,
            experimental_softplus_entropy_loss=False,
            spherical=spherical,
            force_quantization_f32=True,
            orthogonal_rotation=False,
        )
        self.finish_build(init)

    def _quantise(self, z: Tensor, *, freeze: bool = False):
        ret, parts = self.quantiser(
            z, inv_temperature=self.inv_temperature, return_loss_breakdown=True
        )
        out, indices, aux = ret
        stats = {
            "per_sample_entropy": parts.per_sample_entropy.detach(),
            "batch_entropy": parts.batch_entropy.detach(),
        }
        return out, indices.long(), {"lfq_aux": aux}, stats

    def lookup(self, codes: Tensor) -> Tensor:
        return self.quantiser.indices_to_codes(codes)
