"""VQ-VAE (van den Oord, Vinyals, Kavukcuoglu 2017, "Neural Discrete Representation Learning").

Registry name ``vqvae``. A grid of ``h x w`` latent vectors (one token per cell, see
:mod:`baselines.grid`) is quantised to the nearest codeword of ONE shared codebook of K entries
(:class:`qgvae.models.VectorQuantiser` with ``codebook="shared", offset=False``), decoded with
the straight-through estimator.

Loss terms (``ModelOutput.losses``, summed by the trainer):
    ``mse``       mean squared error of the reconstruction (pixels in [0, 1]);
    ``codebook``  ``beta_codebook * mean ||sg[z] - e||^2`` (moves the codewords);
    ``commit``    ``beta_commit * mean ||z - sg[e]||^2`` (moves the encoder).
Rate: ``h * w * log2(K)`` bits (576 for the CIFAR setting: 8 x 8 cells, K = 512).

Follows the original: nearest-codeword quantisation with one shared codebook, straight-through
gradients, the two VQ terms with the paper's weights (1 on the codebook term, beta = 0.25 on the
commitment term), codebook init U(-1/K, 1/K) (Sonnet / common PyTorch ports), the paper's
CIFAR network (128 hidden channels, 2 residual layers of 32 channels, 64-d codes; see
:mod:`baselines.grid`).

Deviations:
- reconstruction term is the mean squared error, not a Gaussian / discretised log-likelihood;
  inputs are in [0, 1] (the Sonnet example used [-0.5, 0.5]); no output activation;
- no EMA codebook updates (the paper's appendix variant), no codebook resets (``after_step`` is
  a no-op: nothing to update outside the optimiser);
- VQ-WAE's VQ-VAE baseline code (``quantizer.VectorQuantizer``, whose numbers the QG-VAE paper
  quotes) puts beta = 0.25 on the CODEBOOK term and 1.0 on the commitment term and initialises the
  codebook N(0, 1); set ``beta_codebook=0.25, beta_commit=1.0`` to reproduce that weighting
  (the initialisation stays U(-1/K, 1/K)).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from qgvae.models.interface import ModelOutput
from qgvae.models.quantise import VectorQuantiser

from .grid import GridAutoencoder

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
        beta_codebook: float = 1.0,
        beta_commit: float = 0.25,
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
        )
        self._build_quantiser(groups=1, beta_codebook=beta_codebook, beta_commit=beta_commit)

    def _build_quantiser(self, *, groups: int, beta_codebook: float, beta_commit: float) -> None:
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
