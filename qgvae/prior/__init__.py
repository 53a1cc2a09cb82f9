"""Generation on the tokens (the paper's appendix H): an autoregressive prior for any tokenizer.

The paper trains a minGPT-style transformer, unconditionally, on the code sequences of QG-VAE
and VQ-VAE capped at the same reconstruction quality, and plots the FID of generated samples
against transformer epochs on CIFAR-10. This sub-package does that for every
:class:`qgvae.models.TokenAutoencoder` through the model interface only (``encode``,
``decode``, ``num_tokens``, ``codebook_size``), so it works for the baselines and for
user-supplied methods too.

Modules
-------
``model``     :class:`TokenPrior`, the decoder-only transformer (per-book embeddings and heads,
              learned positions, a start vector, a key/value cache)
``tokenizer`` matched reconstruction quality: which kept tokenizer checkpoint a prior uses
``data``      codes of a split encoded once and cached (``codes_<split>.npz``); the loader
``trainer``   training with the tokenizer trainer's habits (device-resident data, bf16 on
              CUDA, atomic checkpoints, resume, a log, a progress bar)
``sampling``  batched sampling with the KV cache, temperature and top-k; decoding
``metrics``   test NLL in bits per image; gFID with the evaluator's Inception network
``study``     the four steps on one prior folder (encode, [train], sample, evaluate)
``settings``  the workflow config's ``generation`` section; ``plan``: its runs and folders
``bench``     training tokens/s and sampling images/s

Decisions and deviations (the paper states no prior sizes, optimiser or sampling settings)
-----------------------------------------------------------------------------------------
- Sizes and optimiser: ours, minGPT-like (see ``settings``); the prior is trained on the
  tokenizer's *training* split (the validation split is left out, as for the tokenizers).
- Sequence order: the order ``encode`` returns (QG-VAE: token 0..C-1; grid methods: raster).
- Matching: the first kept tokenizer checkpoint whose *validation* PSNR (native resolution)
  reaches the target; ``auto`` = the best PSNR the weaker tokenizer reaches.
- gFID: samples against the first N test images (default N = the whole test split; the paper
  does not say which reference it used), native resolution, pytorch-fid's Inception.
- Unused tokens (``-1``, DQ-VAE): modelled as one more symbol; the paper's tokenizers have none.
"""

from .model import KVCache, Structure, TokenPrior, build_prior
from .settings import DEFAULTS as GENERATION_DEFAULTS

__all__ = ["GENERATION_DEFAULTS", "KVCache", "Structure", "TokenPrior", "build_prior"]
