"""VQ-VAE (van den Oord, Vinyals, Kavukcuoglu 2017, "Neural Discrete Representation Learning"),
as in VQ-WAE's released code, whose VQ-VAE numbers the QG-VAE paper's Table 1 quotes.

Registry name ``vqvae``. A grid of ``h x w`` latent vectors (one token per cell, see
:mod:`baselines.grid`) is quantised to the nearest codeword of ONE shared codebook of K entries
(:class:`qgvae.models.VectorQuantiser` with ``codebook="shared", offset=False``), decoded with
the straight-through estimator. Read for this module: github.com/VuongLong/VQ-WAE (commit
b324f975) ``model.py`` and ``quantizer.py`` (``VectorQuantizer``), ``configs/*_vqvae_C512.yaml``.

Loss terms (``ModelOutput.losses``, summed by the trainer):
    ``mse``       mean squared error of the reconstruction (pixels in [0, 1]; ``F.mse_loss``);
    ``codebook``  ``beta_codebook * mean ||sg[z] - e||^2`` (moves the codewords);
    ``commit``    ``beta_commit * mean ||z - sg[e]||^2`` (moves the encoder).
Rate: ``h * w * log2(K)`` bits (576 for the CIFAR setting: 8 x 8 cells, K = 512).

Defaults follow VQ-WAE's code: ``beta_codebook=0.25, beta_commit=1.0`` (``quantizer.py`` 58: the
0.25 sits on the CODEBOOK term, the reverse of van den Oord et al.'s beta; their weighting is
``beta_codebook=1.0, beta_commit=0.25``), ``init="released"`` (codebook N(0, 1), ``model.py`` 88;
conv weights N(0, 0.02), ``model.py`` 23-29 and 81). ``init="uniform"`` is the harness's previous
initialisation (codebook U(-1/K, 1/K), PyTorch's default layers). ``network`` picks the encoder /
decoder (:mod:`baselines.grid`; the configs use the released ``"vqwae_net32"`` / ``"vqwae_net64"``).

Measured (``photos``, the quick config's VQ-VAE on the ``"grid"`` network, 400 steps of batch 8):
with ``init="released"`` the N(0, 1) codebook, far from the small initial latents, collapses to
ONE code (batch perplexity 1.0; validation 14.3 dB, the mean image's 14.4 dB), while
``init="uniform"`` trains (perplexity 16.7, 20.7 dB). The ``vqvae_init`` ablation of
``config/config.yaml`` shows both on CIFAR-10.

Deviations: none in the model (like the released code: no EMA codebook, no codebook resets;
``after_step`` is a no-op); test reconstructions are rounded to uint8 where VQ-WAE's code
truncates (``util.py`` 368-404).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from qgvae.models.interface import ModelOutput
from qgvae.models.quantise import VectorQuantiser

from .grid import GridAutoencoder, initialise

__all__ = ["VQVAE"]


class VQVAE(GridAutoencoder):
    """VQ-VAE on the shared grid network. See the module docstring."""

    display_name = "VQ-VAE"

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
        beta_codebook: float = 0.25,
        beta_commit: float = 1.0,
    ) -> None:
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
        self._build_quantiser(
            groups=1, beta_codebook=beta_codebook, beta_commit=beta_commit, init=init
        )

    def _build_quantiser(
        self, *, groups: int, beta_codebook: float, beta_commit: float, init: str
    ) -> None:
        if self.code_dim % groups:
            raise ValueError(f"code_dim ({self.code_dim}) must be divisible by groups ({groups})")
        self.groups = groups
        self.quantiser = VectorQuantiser(
            num_tokens=self.cells,
            dim=self.code_dim,
            codebook_size=self.codebook_size,
            codebook="shared",
            groups=groups,
            offset=False,
            beta_codebook=beta_codebook,
            beta_commit=beta_commit,
            init_range=1.0 / self.codebook_size,
        )
        initialise(self, self.quantiser.codebooks, init)
        self.num_tokens = self.cells * groups

    def forward(self, x: Tensor) -> ModelOutput:
        out = self.quantiser(self.tokens(x))
        recon = self.decode_tokens(out.quantised)
        losses = {
            "mse": F.mse_loss(recon.float(), x.float()),
            "codebook": out.loss_codebook,
            "commit": out.loss_commit,
        }
        return ModelOutput(recon, losses, out.codes, {"perplexity": out.perplexity})
