"""qgvae: the importable core of qgvae-bench.

Reproduces the Quantised Global Autoencoder (QG-VAE, Elsner et al., arXiv 2407.11913) and
trains / evaluates its baselines (package ``baselines``) with one trainer and one evaluator.

Layout: one sub-package per stage, no Snakemake imports anywhere in this package
--------------------------------------------------------------------------------
- ``data``        dataset recipes (mnist, cifar10, svhn, celeba64, photos), the verified uint8
                  cache and the device-resident loader.
- ``models``      the model interface, quantisers, U-Net blocks and QG-VAE itself.
- ``training``    the trainer, its checkpoint files and the throughput bench.
- ``evaluation``  test reconstructions; SSIM, PSNR, LPIPS, rFID and code usage under two
                  protocols; the metric networks' weight files.
- ``rendering``   the one reader of ``results/``: the summary table (``qgvae collect``), and
                  the LaTeX tables, figures, markdown page and report rendered from it.
- ``cli``         the ``qgvae`` command: the only code that parses arguments or prints.
- ``config`` (run configs and their schema), ``runs`` (one run's resolved config and folder
  name), ``plan`` (a workflow config -> runs and table cells), ``methods`` (the plug-in
  registry of tokenizers), ``errors``, ``io``, ``machine``, ``progress`` (progress lines of
  long loops), ``gpu_slots`` (which GPU of the machine a run uses, and how many runs share one).

The model interface (``qgvae.models.TokenAutoencoder``)
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
