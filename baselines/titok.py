"""A 1-D tokenizer in the style of TiTok (Yu, Weber, Deng, Shen, Cremers, Chen 2024, "An Image is
Worth 32 Tokens for Reconstruction and Generation", arXiv 2406.07550): the image becomes a
sequence of ``latents`` discrete tokens that are not tied to positions of a patch grid. Ours, at
CIFAR scale; no released code or weights are used.

Registry name ``titok``.

Model (nanoGPT-style pre-LayerNorm transformer blocks, :class:`Block`):
- encoder: the image is cut into ``patch_size``-px patches (a strided conv, ``N = (image_size /
  patch_size)^2`` patch tokens of ``width``) plus a learned positional embedding; ``latents``
  learned latent tokens (with their own positional embedding) are appended; ``depth`` blocks
  (``heads`` attention heads, MLP ``mlp_ratio * width``, GELU) run over the ``N + latents``
  tokens; the outputs at the latent positions, LayerNorm-ed and projected to ``code_dim``, are the
  only thing that is quantised;
- quantiser: the harness's :class:`qgvae.models.quantise.VectorQuantiser` with ONE codebook of
  ``codebook_size`` entries shared by all latents (``codebook="shared"``, no per-token offset),
  nearest codeword, straight-through estimator, codebook initialised U(-1/K, 1/K) (as TiTok's
  ``VectorQuantizer``; its optional l2 normalisation of latents and codewords is not used),
  optional gradient-usage resets every ``reset_every`` steps (the QG-VAE authors' reset,
  :meth:`VectorQuantiser.reset_unused`; 0 = off, TiTok has none);
- decoder: the quantised latents, projected to ``width`` plus their positional embedding,
  follow ``N`` copies of ONE learned mask token (plus the patch positional embedding);
  ``depth`` blocks; the outputs at the mask positions are LayerNorm-ed, projected to
  ``patch_size^2 * channels`` pixels and folded back into the image. No output activation.

Single-stage training: the pixel MSE plus the VQ terms; no proxy codes from a pretrained
tokenizer, no GAN, no perceptual loss (TiTok's two-stage recipe and its GAN are left out).

Codes ``LongTensor [B, latents]`` in ``[0, K)``; ``num_tokens = latents`` whatever the image size
(the positional embeddings of the patches depend on it, the token count does not). Rate:
``latents * log2(K)`` bits (576 for 64 latents of K 512).

Loss terms: ``mse``, ``codebook`` (``beta_codebook * mean ||sg[z] - e||^2``), ``commit``
(``beta_commit * mean ||z - sg[e]||^2``); defaults 1.0 / 0.25 (van den Oord et al.'s weighting,
as TiTok's quantiser). Positional embeddings, latent tokens and the mask token are initialised
``width^-0.5 * N(0, 1)`` (TiTok). Linear layers: ``init="torch"`` (default) keeps PyTorch's
default (Kaiming-uniform) initialisation; ``init="vit"`` is TiTok's / timm's ViT initialisation
(weights N(0, 0.02) truncated at 2 s.d., zero biases). Measured at the quick scale (``photos``,
width 64, 2 + 2 blocks, 64 latents of K 64, Adam 1e-3, batch 16): with ``"vit"`` the decoder
never used its latents in 500 steps (validation PSNR at the mean image's, no input dependence,
at lr 1e-3 and 3e-4, with or without codebook resets or a larger codebook initialisation: the
image-dependent part of the latents stays below the codeword spacing and the codes stay fixed per
latent), while ``"torch"`` was 5.7 dB above the mean image with 6.3 dB input dependence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qgvae.models.interface import ModelOutput, TokenAutoencoder
from qgvae.models.quantise import VectorQuantiser

__all__ = ["INITS", "Block", "TiTokVAE"]

INITS = ("torch", "vit")


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` (no mask)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        hidden = int(round(mlp_ratio * width))
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: Tensor) -> Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, w // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.ln2(x))


def _embedding(*shape: int, width: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * width**-0.5)


class TiTokVAE(TokenAutoencoder):
    """A TiTok-style 1-D tokenizer (ViT encoder + learned latents, ViT decoder from mask tokens).
    See the module docstring."""

    display_name = "1-D tokenizer"

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        patch_size: int = 4,
        width: int = 256,
        depth: int = 6,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        latents: int = 64,
        code_dim: int = 16,
        codebook_size: int = 512,
        beta_codebook: float = 1.0,
        beta_commit: float = 0.25,
        reset_every: int = 0,
        init: str = "torch",
    ) -> None:
        super().__init__()
        for key, value in (
            ("patch_size", patch_size),
            ("width", width),
            ("depth", depth),
            ("heads", heads),
            ("latents", latents),
            ("code_dim", code_dim),
        ):
            if value < 1:
                raise ValueError(f"model.{key} must be >= 1, got {value}")
        if image_size % patch_size:
            raise ValueError(
                f"model.patch_size {patch_size} does not divide the image size {image_size}"
            )
        if width % heads:
            raise ValueError(f"model.heads {heads} does not divide model.width {width}")
        if codebook_size < 2:
            raise ValueError(f"model.codebook_size must be >= 2, got {codebook_size}")
        if mlp_ratio <= 0:
            raise ValueError(f"model.mlp_ratio must be > 0, got {mlp_ratio}")
        if init not in INITS:
            raise ValueError(f"model.init must be one of {', '.join(INITS)}; got {init!r}")
        if reset_every < 0:
            raise ValueError(f"model.reset_every must be >= 0 (0 = off), got {reset_every}")
        self.in_channels, self.image_size, self.patch = in_channels, image_size, patch_size
        self.side = image_size // patch_size
        self.patches = self.side**2
        self.num_tokens, self.codebook_size = latents, codebook_size
        self.reset_every = reset_every

        # encoder
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.enc_pos = _embedding(self.patches, width, width=width)
        self.latent_tokens = _embedding(latents, width, width=width)
        self.enc_latent_pos = _embedding(latents, width, width=width)
        self.enc_ln_pre = nn.LayerNorm(width)
        self.encoder = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.enc_ln_post = nn.LayerNorm(width)
        self.to_code = nn.Linear(width, code_dim)
        # quantiser
        self.quantiser = VectorQuantiser(
            num_tokens=latents,
            dim=code_dim,
            codebook_size=codebook_size,
            codebook="shared",
            groups=1,
            offset=False,
            beta_codebook=beta_codebook,
            beta_commit=beta_commit,
            init_range=1.0 / codebook_size,
        )
        # decoder
        self.from_code = nn.Linear(code_dim, width)
        self.dec_latent_pos = _embedding(latents, width, width=width)
        self.mask_token = _embedding(1, 1, width, width=width)
        self.dec_pos = _embedding(self.patches, width, width=width)
        self.dec_ln_pre = nn.LayerNorm(width)
        self.decoder = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.dec_ln_post = nn.LayerNorm(width)
        self.to_pixels = nn.Linear(width, patch_size * patch_size * in_channels)
        if init == "vit":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                    nn.init.zeros_(m.bias)

    # -- encoder / decoder ------------------------------------------------------------------
    def latent_vectors(self, x: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` -> continuous latents ``[B, latents, code_dim]``."""
        want = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"expected images [B, {want[0]}, {want[1]}, {want[2]}], got {tuple(x.shape)}"
            )
        p = self.patch_embed(x).flatten(2).transpose(1, 2) + self.enc_pos
        lat = (self.latent_tokens + self.enc_latent_pos).expand(x.shape[0], -1, -1)
        h = self.enc_ln_pre(torch.cat([p, lat.to(p.dtype)], dim=1))
        for block in self.encoder:
            h = block(h)
        return self.to_code(self.enc_ln_post(h[:, self.patches :]))

    def decode_latents(self, q: Tensor) -> Tensor:
        """Quantised latents ``[B, latents, code_dim]`` -> images. Under autocast they are cast to
        the autocast dtype first, so that the forward pass and ``decode`` feed identical values."""
        kind = q.device.type
        if torch.is_autocast_enabled(kind):
            q = q.to(torch.get_autocast_dtype(kind))
        lat = self.from_code(q) + self.dec_latent_pos
        mask = (self.mask_token + self.dec_pos).expand(q.shape[0], -1, -1)
        h = self.dec_ln_pre(torch.cat([mask.to(lat.dtype), lat], dim=1))
        for block in self.decoder:
            h = block(h)
        pix = self.to_pixels(self.dec_ln_post(h[:, : self.patches]))  # [B, N, p*p*C]
        b, c, s, p = q.shape[0], self.in_channels, self.side, self.patch
        pix = pix.view(b, s, s, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return pix.reshape(b, c, s * p, s * p)

    # -- TokenAutoencoder -------------------------------------------------------------------
    def forward(self, x: Tensor) -> ModelOutput:
        out = self.quantiser(self.latent_vectors(x))
        recon = self.decode_latents(out.quantised)
        losses = {
            "mse": F.mse_loss(recon.float(), x.float()),
            "codebook": out.loss_codebook,
            "commit": out.loss_commit,
        }
        return ModelOutput(recon, losses, out.codes, {"perplexity": out.perplexity})

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images -> codes ``LongTensor [B, latents]``."""
        return self.quantiser.nearest(self.latent_vectors(x))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, latents]`` -> images (equals the eval forward pass's reconstruction)."""
        return self.decode_latents(self.quantiser.lookup(codes))

    def after_step(self, step: int) -> dict[str, float]:
        """With ``reset_every > 0``: accumulate the codebook's gradient usage (the trainer calls
        this before ``zero_grad``) and reset unused codewords every ``reset_every`` steps."""
        if self.reset_every <= 0:
            return {}
        self.quantiser.accumulate_usage()
        if step > 0 and step % self.reset_every == 0:
            return {"reset_moved": self.quantiser.reset_unused()}
        return {}
