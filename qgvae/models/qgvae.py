"""QG-VAE: the Quantised Global Autoencoder (Elsner et al., arXiv 2407.11913).

image ``[B, c, S, S]`` -> encoder U-Net (+ 1x1 conv of the image, 2x2-average-pooled f times)
-> feature map ``[B, C, h, w]`` with ``C = tokens``, ``h = w = S / 2^f``
-> **transpose**: ``[B, C, h*w]``, every channel becomes one *global* token
-> per-head affine maps ``R^(h*w) -> R^D`` (``heads`` maps, each shared by ``C / heads``
   consecutive tokens) -> ``z [B, C, D]``
-> :class:`~qgvae.models.quantise.VectorQuantiser` (one codebook per token, learned offset)
-> [training only, optional: ordering regularisation replaces tokens ``k..C-1``]
-> per-head affine maps ``R^D -> R^(h*w)`` -> ``[B, C, h, w]``
-> decoder U-Net upsampling f times (+ 1x1 conv of its input, bilinear x2 f times) -> image.

No output activation; the loss is ``MSE + 0.25 ||sg[z] - e||^2 + 1.0 ||z - sg[e]||^2``.

**The authors' network, exactly.** The authors' notebook (github.com/DaiDaiLoh/QG-VAE,
``QG-VAE.ipynb``, ``BaseAE``; their README says it produced the benchmark numbers) was built beside
this class and its weights copied in, name by name (``docs/fidelity.md``: procedure and figures).
At MNIST (1x32x32 and 1x28x28), CIFAR-10 (3x32x32), our CelebA setting (3x64x64, 256 tokens,
f=1, 32 heads) and their ImageNet default (3x128x128, 256 tokens, f=3, 128 heads, 2 blocks) the
parameter counts are equal, the reconstructions agree to 4.3e-6 or better, the codes and both
quantiser losses are identical, and one backward pass gives the same gradients to 2e-6 relative.
What their code does, and this class does the same:

- every residual block has a bias-free 1x1 conv on its skip path, also where the widths agree;
- the conditioning ``cat(image, positional encoding)`` is handed from level to level subsampled
  by nearest neighbour (every 2nd pixel), and within a level resized to the second residual
  stack's input in bilinear x2 / x0.5 steps (:mod:`qgvae.models.blocks`);
- every skip path is resized in x2 / x0.5 steps (bilinear; 2x2 average pooling for the encoder's
  image skip), never in one jump;
- the positional encoding takes their float32 coordinates ``row / S`` (not exact at 28 px);
- initialisation: PyTorch's default layers, codebooks and offset ``U(-0.5, 0.5)``;
- the codebook reset pairs unused and loaded codewords in their order (ties by index).

Their built-but-never-called ``full_residual`` convs and their frozen per-level positional
encodings are left out (they do not change any output). Their training loop runs the forward pass
twice per step and keeps the second: one pass here gives the same gradients. The offset is stored
``[C, D]`` here, ``[D, C]`` there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import UNet, conv1x1, resize_in_steps
from .interface import ModelOutput, TokenAutoencoder
from .quantise import VectorQuantiser
from .tokens import (
    ORDERINGS,
    HeadwiseLinear,
    from_global_tokens,
    from_local_tokens,
    ordering_mask,
    prefix_mask,
    to_global_tokens,
    to_local_tokens,
)

__all__ = [
    "QGVAE",
    "HeadwiseLinear",
    "to_global_tokens",
    "from_global_tokens",
    "to_local_tokens",
    "from_local_tokens",
    "prefix_mask",
    "ordering_mask",
]

CODEBOOKS = ("individual", "shared")
FILLS = ("zeros", "null")


# -- the model --------------------------------------------------------------------------------
class QGVAE(TokenAutoencoder):
    """Quantised Global Autoencoder.

    Args (keyword-only; the run config's ``model:`` section maps onto them):
        in_channels:   image channels (1 or 3); given by the dataset.
        image_size:    image side S (square images); must be divisible by ``2**downscalings``.
        tokens:        C, channels of the encoder's feature map = number of global tokens
                       (paper: 64 for MNIST/CIFAR/SVHN/CelebA-64, 256 for ImageNet-128).
        downscalings:  f, the feature map is ``S / 2^f`` per side (the encoder's first f levels do
                       not upsample back, the decoder's first f levels do not downsample).
        code_dim:      D, dimension of each token in quantisation space.
        codebook_size: K, codewords per codebook.
        heads:         number of affine maps ``R^(h*w) -> R^D`` (and back); each serves
                       ``tokens / heads`` consecutive tokens. Ignored with ``global_tokens=False``.
        blocks:        residual blocks per ResStack of the U-Nets (authors: 1; ImageNet: 2).
        min_channels:  width of the encoder's top level; doubles per level.
        max_channels:  width cap of both U-Nets (the decoder runs at this width, authors' code).
        codebook:      ``"individual"`` (one codebook per token, the paper) or ``"shared"``.
        groups:        multi-group quantisation (MGVQ): each token split into ``groups``
                       sub-vectors with their own codebooks; rate ``T * groups * log2(K)``.
        reset_every:   optimiser steps between codebook resets (0 disables; authors: 100).
        ordering:      ordering regularisation (training only): ``"off"``; ``"sample"`` (authors'
                       code: per sample with probability ``ordering_prob``); ``"batch"`` (paper's
                       text: the whole batch on every third step). See :func:`ordering_mask`.
        ordering_fill: what replaces the dropped tokens: ``"zeros"`` (authors) or ``"null"``
                       (a learned null token ``[D]``, SEMANTICIST's nested dropout).
        ordering_prob: probability per sample for ``ordering="sample"`` (authors: 1/3).
        global_tokens: True: the paper's global tokens. False: the "local tokens" ablation, the
                       transpose is switched off and the feature map ``[B, C, h, w]`` is read as
                       ``h*w`` tokens of dimension C, projected to D by a 1x1 conv; the token
                       count is then ``h*w`` (choose f so that it matches, e.g. 32 px with f=2
                       gives 64 local tokens) and ``heads`` is unused.
        beta_codebook: weight of ``||sg[z] - e||^2`` (authors: 0.25).
        beta_commit:   weight of ``||z - sg[e]||^2`` (authors: 1.0).

    ``num_tokens`` = T * groups and ``codebook_size`` = K, so ``bits_per_image()`` =
    ``T * groups * log2(K)`` with T = tokens (global) or h*w (local).
    """

    display_name = "QG-VAE"

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: int,
        tokens: int = 64,
        downscalings: int = 0,
        code_dim: int = 64,
        codebook_size: int = 512,
        heads: int = 8,
        blocks: int = 1,
        min_channels: int = 16,
        max_channels: int = 128,
        codebook: str = "individual",
        groups: int = 1,
        reset_every: int = 100,
        ordering: str = "off",
        ordering_fill: str = "zeros",
        ordering_prob: float = 1 / 3,
        global_tokens: bool = True,
        beta_codebook: float = 0.25,
        beta_commit: float = 1.0,
    ) -> None:
        super().__init__()
        _check_int(
            in_channels=in_channels,
            image_size=image_size,
            tokens=tokens,
            code_dim=code_dim,
            codebook_size=codebook_size,
            heads=heads,
            blocks=blocks,
            min_channels=min_channels,
            max_channels=max_channels,
            groups=groups,
        )
        _check_int(minimum=0, downscalings=downscalings, reset_every=reset_every)
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
        if image_size % 2**downscalings:
            raise ValueError(
                f"image_size ({image_size}) must be divisible by "
                f"2**downscalings ({2**downscalings})"
            )
        if min_channels > max_channels:
            raise ValueError(f"min_channels ({min_channels}) > max_channels ({max_channels})")
        if code_dim % groups:
            raise ValueError(f"code_dim ({code_dim}) must be divisible by groups ({groups})")
        if not isinstance(global_tokens, bool):
            raise ValueError(f"global_tokens must be a bool, got {global_tokens!r}")
        if global_tokens and tokens % heads:
            raise ValueError(f"tokens ({tokens}) must be divisible by heads ({heads})")
        for name, value, allowed in (
            ("codebook", codebook, CODEBOOKS),
            ("ordering", ordering, ORDERINGS),
            ("ordering_fill", ordering_fill, FILLS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not 0.0 <= float(ordering_prob) <= 1.0:
            raise ValueError(f"ordering_prob must lie in [0, 1], got {ordering_prob}")

        self.in_channels, self.image_size = in_channels, image_size
        self.downscalings, self.global_tokens = downscalings, global_tokens
        self.reset_every, self.ordering = reset_every, ordering
        self.ordering_fill, self.ordering_prob = ordering_fill, float(ordering_prob)
        self.groups = groups
        self.feature_size = h = image_size // 2**downscalings
        num_positions = tokens if global_tokens else h * h  # T, tokens before grouping
        if ordering != "off" and num_positions < 2:
            raise ValueError("ordering regularisation needs at least 2 tokens")

        unet = dict(min_channels=min_channels, max_channels=max_channels, blocks=blocks)
        self.encoder = UNet(
            in_channels=in_channels,
            out_channels=tokens,
            size=image_size,
            width=min_channels,
            skip_up=downscalings,
            **unet,
        )
        self.encoder_skip = conv1x1(in_channels, tokens)
        if global_tokens:
            self.to_code = HeadwiseLinear(heads, h * h, code_dim)
            self.from_code = HeadwiseLinear(heads, code_dim, h * h)
        else:
            self.to_code = conv1x1(tokens, code_dim)
            self.from_code = conv1x1(code_dim, tokens)
        self.quantiser = VectorQuantiser(
            num_tokens=num_positions,
            dim=code_dim,
            codebook_size=codebook_size,
            codebook=codebook,
            groups=groups,
            offset=True,
            beta_codebook=beta_codebook,
            beta_commit=beta_commit,
        )
        self.null_token = None
        if ordering != "off" and ordering_fill == "null":
            self.null_token = nn.Parameter((torch.rand(code_dim) * 2.0 - 1.0) * 0.5)
        # The authors' decoder U-Net runs at max_channels from its first level on.
        self.decoder = UNet(
            in_channels=tokens,
            out_channels=in_channels,
            size=h,
            width=max_channels,
            skip_down=downscalings,
            **unet,
        )
        self.decoder_skip = conv1x1(tokens, in_channels)

        self.num_positions = num_positions
        self.num_tokens = num_positions * groups
        self.codebook_size = codebook_size
        self._step = 0  # optimiser steps completed (set by after_step); drives ordering="batch"

    # -- pieces ---------------------------------------------------------------------------------
    def _check_images(self, x: Tensor) -> None:
        want = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"expected images [B, {want[0]}, {want[1]}, {want[2]}], got {tuple(x.shape)}"
            )

    def features(self, x: Tensor) -> Tensor:
        """Encoder: images ``[B, c, S, S]`` -> feature map ``[B, C, h, w]``."""
        self._check_images(x)
        feat = self.encoder(x)
        return feat + resize_in_steps(self.encoder_skip(x), feat.shape[-2], down="average")

    def to_tokens(self, feat: Tensor) -> Tensor:
        """Feature map ``[B, C, h, w]`` -> continuous tokens ``z [B, T, D]``."""
        if self.global_tokens:
            return self.to_code(to_global_tokens(feat))
        return to_local_tokens(self.to_code(feat))

    def from_tokens(self, q: Tensor) -> Tensor:
        """Quantised tokens ``[B, T, D]`` -> images (the decoder half)."""
        h = self.feature_size
        if self.global_tokens:
            return self.images(from_global_tokens(self.from_code(q), h, h))
        return self.images(self.from_code(from_local_tokens(q, h, h)))

    def images(self, feat: Tensor) -> Tensor:
        """Decoder: feature map ``[B, C, h, w]`` -> images (+ 1x1 conv of the map, upsampled)."""
        img = self.decoder(feat)
        return img + resize_in_steps(self.decoder_skip(feat), img.shape[-2])

    def fill_tokens(self, q: Tensor, keep: Tensor) -> Tensor:
        """Replace the tokens where ``keep [B, T]`` is False by the ordering fill
        (the learned null token if ``ordering_fill="null"`` and ordering is on, else zeros)."""
        fill = self.null_token if self.null_token is not None else q.new_zeros(q.shape[-1])
        return torch.where(keep[..., None], q, fill.to(q.dtype))

    # -- TokenAutoencoder -------------------------------------------------------------------------
    def forward(self, x: Tensor) -> ModelOutput:
        """Reconstruct ``x``. In training mode with ordering on, the dropped tokens get the
        fill and code ``-1`` (all groups of the token); the quantiser losses still cover them."""
        out = self.quantiser(self.to_tokens(self.features(x)))
        q, codes = out.quantised, out.codes
        if self.training and self.ordering != "off":
            keep = ordering_mask(
                x.shape[0],
                self.num_positions,
                mode=self.ordering,
                prob=self.ordering_prob,
                step=self._step,
                device=x.device,
            )
            q = self.fill_tokens(q, keep)
            codes = codes.masked_fill(~keep.repeat_interleave(self.groups, dim=1), -1)
        recon = self.from_tokens(q)
        losses = {
            "mse": F.mse_loss(recon.float(), x.float()),
            "codebook": out.loss_codebook,
            "commit": out.loss_commit,
        }
        return ModelOutput(recon, losses, codes, {"perplexity": out.perplexity})

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images -> ``LongTensor [B, T * groups]`` (token-major, groups innermost)."""
        return self.quantiser.nearest(self.to_tokens(self.features(x)))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, T * groups]`` -> images; equals ``forward(x).recon`` in eval mode."""
        return self.from_tokens(self.quantiser.lookup(codes))

    @torch.no_grad()
    def decode_prefix(self, codes: Tensor, k: int | Tensor) -> Tensor:
        """Decode with only the first ``k`` tokens (int, or LongTensor ``[B]``); tokens ``k..T-1``
        get the ordering fill (zeros when ordering is off). For the progressive decomposition."""
        q = self.quantiser.lookup(codes)
        kt = torch.as_tensor(k, dtype=torch.long, device=q.device).expand(q.shape[0])
        if bool(((kt < 0) | (kt > self.num_positions)).any()):
            raise ValueError(f"k must lie in [0, {self.num_positions}], got {k}")
        return self.from_tokens(self.fill_tokens(q, prefix_mask(kt, self.num_positions)))

    def after_step(self, step: int) -> dict[str, float]:
        """Codebook bookkeeping after optimiser step number ``step`` (1-based count of steps done).

        Contract: the trainer calls this after ``optimizer.step()`` but BEFORE ``zero_grad()``,
        once per step, so the codebook gradients of this step are still in ``.grad``; they are
        added to the usage counters. Every ``reset_every`` steps (0 disables) the unused codewords
        are reset; returns ``{"reset_moved": n}`` on those steps, else ``{}``.
        """
        self._step = int(step)
        self.quantiser.accumulate_usage()
        if self.reset_every > 0 and step > 0 and step % self.reset_every == 0:
            return {"reset_moved": self.quantiser.reset_unused()}
        return {}

    def get_extra_state(self) -> dict[str, int]:
        """Saved with the state dict: the step count that drives ``ordering="batch"``, so a
        resumed run keeps the every-third-step schedule of an uninterrupted one."""
        return {"step": self._step}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self._step = int(state["step"])


def _check_int(minimum: int = 1, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
