"""Baselines of qgvae-bench: grid (patch-token) discrete autoencoders trained by the same trainer
and measured by the same evaluator as QG-VAE.

=============  ==================================  ==============================================
registry name  class                               method
=============  ==================================  ==============================================
``vqvae``      :class:`baselines.vqvae.VQVAE`        VQ-VAE (van den Oord et al. 2017)
``sqvae``      :class:`baselines.sqvae.SQVAE`        Gaussian SQ-VAE (Takida et al. 2022), the
                                                   paper's "SVQ-VAE" column
``vqwae``      :class:`baselines.vqwae.VQWAE`        VQ-WAE (Vuong et al. 2023), OT between the
                                                   codeword and latent distributions
``splitvq``    :class:`baselines.splitvq.SplitVQVAE` split / multi-group VQ (Strong et al. 2021,
                                                   MGVQ)
``dqvae``      :class:`baselines.dqvae.DQVAE`        dual-grain DQ-VAE (Huang et al. 2023), no GAN
=============  ==================================  ==============================================

All share :mod:`baselines.grid` (VQ-WAE's baseline network: conv 4x4/s2 -> conv 4x4/s2 ->
conv 3x3 -> residual layers -> 1x1 to the code dimension, and its mirror) and the quantiser of
:mod:`qgvae.models.quantise`. Each module's docstring names its source, what follows the
original code and every deviation. Each class registers itself under the name above through
the ``qgvae.methods`` entry points (``pyproject.toml``). The package imports nothing at import
time (each module imports only torch and qgvae; POT is imported lazily by the exact VQ-WAE
solver).
"""

__all__ = ["grid", "vqvae", "sqvae", "vqwae", "splitvq", "dqvae"]
