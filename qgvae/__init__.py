"""qgvae: the importable core of qgvae-bench.

Reproduces the Quantised Global Autoencoder (QG-VAE, Elsner et al., arXiv 2407.11913) and
trains / evaluates its baselines (package ``baselines``) with one trainer and one evaluator.

Layout (one small module each, no Snakemake imports anywhere in this package)
-----------------------------------------------------------------------------
- ``interface``  the model interface every method implements (below).
- ``quantise``   nearest-codeword vector quantisers: per-position ("individual"), shared and
                 multi-group codebooks, straight-through estimator, gradient-based resets.
- ``blocks``     residual blocks, positional encoding and the U-Net halves of QG-VAE.
- ``model``      QG-VAE itself (global tokens via the channel transpose + per-head affine maps).
- ``data``       dataset registry (mnist, cifar10, svhn, celeba64, photos) and device-resident
                 uint8 loaders.
- ``config``     run configuration: defaults, JSON-schema validation, variant names.
- ``registry``   method name -> model class (QG-VAE and every baseline).
- ``train``      the trainer (AdamW, bf16 autocast, checkpoints, resume, run.json).
- ``reconstruct`` the test split's uint8 reconstructions, codes and analysis arrays.
- ``metrics`` / ``evaluate``  SSIM, PSNR, LPIPS, rFID and code usage under two protocols.
- ``tables`` / ``figures`` / ``report``  LaTeX tables, figures and the report, read only
                 from files under ``results/``.
- ``cli``        the ``qgvae`` command (train, reconstruct, evaluate, bench, ...).

The model interface (``qgvae.interface.TokenAutoencoder``)
----------------------------------------------------------
Images enter every model as float tensors ``[B, 3 or 1, H, W]`` in ``[0, 1]``.

``forward(x) -> ModelOutput`` with
    ``recon``   the reconstruction ``[B, C, H, W]`` (no output activation),
    ``losses``  a dict of named scalar loss terms (e.g. ``mse``, ``codebook``, ``commit``);
                their sum is what the trainer minimises (``ModelOutput.loss``),
    ``codes``   ``LongTensor [B, T]``: the code index chosen for each of the T tokens
                (``-1`` marks a token that was not used for that image, e.g. DQ-VAE's
                unrefined regions),
    ``stats``   a dict of diagnostics (floats or detached 0-d tensors, e.g. perplexity) that the
                trainer converts and logs only on logging steps.
``encode(x) -> LongTensor [B, T]`` and ``decode(codes) -> images``; in evaluation mode
``decode(encode(x))`` equals ``forward(x).recon`` exactly.
``after_step(step) -> dict`` runs after every optimiser step (QG-VAE: gradient accumulation
for codebook resets and the reset itself every N steps); it returns numbers to log.
``num_tokens`` (T), ``codebook_size`` (K per token) and ``bits_per_image()`` describe the rate,
so every method can be placed on one rate-distortion axis.
"""

__version__ = "0.1.0"
