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
``fsq``        :class:`baselines.fsq.FSQVAE`         FSQ (Mentzer et al. 2023), library quantiser
``lfq``        :class:`baselines.lfq.LFQVAE`         LFQ (MAGVIT-v2, Yu et al. 2023), library
``rvq``        :class:`baselines.rvq.ResidualVQVAE`  residual VQ (SoundStream, RQ-VAE), library
``simvq``      :class:`baselines.simvq.SimVQVAE`     SimVQ (Zhu et al. 2024), library
``rotvq``      :class:`baselines.rotvq.RotationVQVAE` VQ with EMA codebook and the rotation trick
                                                   (Fifty et al. 2024), library
``titok``      :class:`baselines.titok.TiTokVAE`     a TiTok-style 1-D tokenizer (ours): ViT,
                                                   learned latents, only they are quantised
=============  ==================================  ==============================================

The grid baselines build on :mod:`baselines.grid` (the autoencoder) and :mod:`baselines.grid_nets`
(the grid encoders / decoders: the network the VQ-WAE paper describes, VQ-WAE's released 32-px
network and the BatchNorm networks of :mod:`baselines.bn_nets`; the released initialisation) and the
quantiser of :mod:`qgvae.models.quantise`. Helpers: :mod:`baselines.transport` (VQ-WAE's optimal
transport: POT's exact solver, a batched Sinkhorn and a batched Newton solver on the device),
:mod:`baselines.ema` (DQ-VAE's EMA codebook with restarts), :mod:`baselines.perceptual` (the frozen
LPIPS network of DQ-VAE's loss), :mod:`baselines.libvq` (the grid network around a quantiser of
``vector-quantize-pytorch``, pinned: fp32, tokens, exact round trips; ``fsq``, ``lfq``, ``rvq``,
``simvq``, ``rotvq``). Each module's docstring names its source, what follows the released code and
every deviation; ``docs/baselines.md`` compares the resolved settings with the released configs line
by line. Each class registers itself under the name above through the ``qgvae.methods`` entry points
(``pyproject.toml``). Importing the package imports only torch and qgvae; POT, lpips and
vector-quantize-pytorch are imported when first used (the last pulls in einx and ``torch._dynamo``:
about 2-4 s per process on a busy 2-core CPU)."""

__all__ = [
    "grid",
    "grid_nets",
    "bn_nets",
    "transport",
    "ema",
    "perceptual",
    "vqvae",
    "sqvae",
    "vqwae",
    "splitvq",
    "dqvae",
    "libvq",
    "fsq",
    "lfq",
    "rvq",
    "simvq",
    "rotvq",
    "titok",
]
