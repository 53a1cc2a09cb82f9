"""DQ-VAE, dual-grain dynamic quantisation (Huang, Mao, Chen, Zhang 2023, "Towards Accurate Image
Coding: Improved Autoregressive Image Generation with Dynamic Vector Quantization", CVPR),
scaled to 32 / 64 px, without the GAN.

Registry name ``dqvae``. Read for this module: github.com/CrossmodalGroup/DynamicVectorQuantization
(commit be6dc36c) ``models/stage1_dynamic/dqvae_dual_feat.py``,
``modules/dynamic_modules/EncoderDual.py``, ``RouterDual.py``, ``budget.py``,
``DecoderPositional.py``, ``modules/vector_quantization/quantize2_mask.py``,
``modules/losses/vqperceptual_multidisc.py`` and ``configs/stage1/dqvae-dual-r-05_imagenet.yml``.

Model.
- Fine branch: the grid encoder of :mod:`baselines.grid` gives ``h_fine [B, D, hf, wf]``
  (``hf = image_size / 2**downsample``). Coarse branch: ``log2(region)`` more conv 4x4/s2 (+ReLU)
  on the encoder trunk, then its own head (conv 3x3, residual stack, 1x1), giving
  ``h_coarse [B, D, hc, wc]`` with ``hc = hf / region``: one vector per coarse REGION of
  ``region x region`` fine cells (the original: the last two resolutions of the VQGAN encoder,
  each with its own middle block and output conv).
- Router (``DualGrainFeatureRouter``, ``gate_type="2layer-fc-SiLu"``, ``normalization="group"``):
  GroupNorm on both maps, ``[h_coarse, avgpool_region(h_fine)]`` -> Linear(2D, 2D) -> SiLU ->
  Linear(2D, 2) per region: logits (coarse, fine). Training: hard Gumbel-softmax
  (``F.gumbel_softmax(hard=True, tau=gumbel_tau)``, straight-through); evaluation: argmax.
- ``h_dual``: each region takes its ``region^2`` fine vectors if refined, else its coarse vector
  repeated ``region x region`` times; in training it is multiplied by the selected gate value
  (1 in value, carries the router's gradient), as in the original.
- Quantisation: ONE codebook for both grains, nearest codeword, straight-through; every vector
  of ``h_dual`` (a coarse vector once per copy) is quantised, as the original. An unrefined
  region's copies all take the code of its first cell (the same code: the copies are equal).
  ``codebook_update="ema"`` (default, the original's ``VectorQuantize2``): the codebook is
  :class:`baselines.ema.EMACodebook` (decay ``ema_decay`` = 0.99, Laplace eps 1e-5, restarts of
  codes whose EMA count is below 1 from random vectors of the current batch, every training
  step), updated INSIDE the training-mode forward pass after the lookup, as the original; no
  codebook gradient. ``"gradient"``: the harness's earlier codebook, trained by the optimiser
  through ``beta_codebook * mean(m ||sg[z] - e||^2)`` (init U(-1/K, 1/K)), no restarts.
- Decoder: learned 2-D positional embedding (trunc-normal, std 0.02) added to the quantised
  fine-resolution map, then the grid decoder.

Loss terms:
    ``l1``        ``mean |x - x_rec|`` on the original's [-1, 1] scale, i.e. ``2 mean |x - x_rec|``
                  for our [0, 1] images (``recon_loss="l1_lpips"`` or ``"l1"``);
    ``lpips``     ``lpips_weight`` (1.0) x mean LPIPS (:mod:`baselines.perceptual`; ``lpips_net``
                  ``"alex"`` or the original's ``"vgg"``) (``recon_loss="l1_lpips"``);
    ``mse``       mean squared error (``recon_loss="mse"``, the harness's earlier loss);
    ``commit``    ``beta_commit * mean(m * ||z - sg[e]||^2)`` (0.25, ``quantize2_mask.py`` 175)
                  over the fine-resolution map, with the original's ``codebook_mask`` ``m`` = 1 on
                  refined cells and ``1 / region^2`` on the copies of a coarse vector;
    ``codebook``  (``codebook_update="gradient"`` only) ``beta_codebook * mean(m ||sg[z] - e||^2)``;
                  with the EMA codebook the original's weight-1 codebook term has no gradient
                  and is left out (it only shifts the logged loss);
    ``budget``    ``2 * budget_weight * (f - budget)^2`` with ``f`` the batch's fraction of refined
                  regions (straight-through gate): the original's
                  ``BudgetConstraint_RatioMSE_DualGrain`` with ``calculate_all=True`` returns
                  ``loss_budget_last + loss_budget_last`` (``budget.py`` 24-26), twice
                  ``gamma * MSE(1 - f, 1 - r)``. Kept doubled: the released gamma = 10 was tuned
                  with the doubled term, so ``budget_weight=10`` reproduces the released
                  strength (halve it to undo the doubling).

Codes (``[B, region^2 * hc * wc]``, ``num_tokens = hf * wf`` = the maximum number of slots):
region-major (regions row-major over the coarse grid), ``region^2`` slots per region in row-major
order over its fine cells. A refined region fills all its slots with fine codes; an unrefined one
puts its coarse code in slot 0 and ``-1`` ("unused") in the others. ``decode`` reads the routing
mask from the codes (slot 1 < 0 means coarse). Both grains index the same codebook.

Rate. ``bits_per_image()`` is the NOMINAL (expected) rate under the budget ratio r:
``(N + (region^2 - 1) * r * N) * log2(K) + N`` with ``N = hc * wc`` regions (codes + one routing
bit per region); for the defaults on 32 px (8x8 fine cells, 2x2 regions, r = 0.5, K = 512):
(16 + 24) * 9 + 16 = 376 bits. :meth:`DQVAE.bits_for_codes` is the MEASURED rate of each image:
its used codes times log2 K plus the N routing bits (stored per test image by
:mod:`qgvae.evaluation.reconstruct`). The batch's measured rate is in ``stats["bits"]``, its
refined fraction in ``stats["fine_ratio"]``, the router's mean refine probability in
``stats["fine_prob"]``, restarted codes in ``stats["restarted"]``.

Deviations from the original:
- no GAN (the QG-VAE paper ran DQ-VAE without it), so no discriminator and no adaptive weight;
- LPIPS on AlexNet where the configs say so (the original: VGG16, whose trunk the harness's
  offline weights do not include), with its dropout off (see :mod:`baselines.perceptual`);
- the VQGAN encoder / decoder (GroupNorm-Swish ResNet blocks with attention) is replaced by the
  harness's grid network; the coarse branch is extra 4x4/s2 convs plus a head; the decoder's
  positional embedding is one learned table, std 0.02 (the released one: learned row + column
  embeddings, trunc-normal std 1, plus Fourier features, ``DecoderPositional.py`` 13-38,
  103-105); no 1x1 ``quant_conv`` / ``post_quant_conv`` around the quantiser (the grid encoder
  ends in a 1x1 conv already);
- ``region`` generalises the dual grain's fixed 2x2 split to any power of two (the budget ratio
  stays the fraction of refined regions);
- single process (the original all-reduces the EMA statistics under DDP);
- in evaluation the budget term is computed on the router's mean refine probability (the
  expected refined fraction; deterministic), while the routing itself is the argmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qgvae.models.interface import ModelOutput
from qgvae.models.quantise import VectorQuantiser, code_perplexity, straight_through

from .ema import EMACodebook
from .grid import GridAutoencoder, GridHead, grid_to_tokens, tokens_to_grid
from .perceptual import NETS as LPIPS_NETS
from .perceptual import lpips_loss

__all__ = ["DQVAE", "budget_loss"]

UPDATES = ("ema", "gradient")
RECON_LOSSES = ("l1_lpips", "l1", "mse")


def budget_loss(refine: Tensor, target: float, weight: float) -> Tensor:
    """``2 * weight * (mean(refine) - target)^2`` (the original's ``calculate_all`` form).

    ``refine``: per-region refine indicators (hard 0/1 with a straight-through gradient during
    training, or probabilities); any shape.
    """
    frac = refine.float().mean()
    return 2.0 * weight * (frac - target) ** 2


class DQVAE(GridAutoencoder):
    """Dual-grain DQ-VAE on the shared grid network. See the module docstring."""

    display_name = "DQ-VAE"

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
        budget: float = 0.5,
        region: int = 2,
        budget_weight: float = 10.0,
        gumbel_tau: float = 1.0,
        codebook_update: str = "ema",
        ema_decay: float = 0.99,
        restart_unused: bool = True,
        beta_codebook: float = 1.0,
        beta_commit: float = 0.25,
        recon_loss: str = "l1_lpips",
        lpips_net: str = "alex",
        lpips_weight: float = 1.0,
    ) -> None:
        # the decoder comes last, after the coarse branch, router and codebook (creation order)
        super().__init__(
            in_channels=in_channels,
            image_size=image_size,
            channels=channels,
            res_blocks=res_blocks,
            res_channels=res_channels,
            downsample=downsample,
            code_dim=code_dim,
            codebook_size=codebook_size,
            build_decoder=False,
        )
        if region < 2 or region & (region - 1):
            raise ValueError(f"region must be a power of two >= 2, got {region}")
        fine = image_size // 2**downsample
        if fine % region:
            raise ValueError(f"the fine grid ({fine}x{fine}) is not divisible by region {region}")
        if not 0.0 <= budget <= 1.0:
            raise ValueError(f"budget must be in [0, 1], got {budget}")
        if gumbel_tau <= 0 or budget_weight < 0:
            raise ValueError("gumbel_tau must be > 0 and budget_weight >= 0")
        for name, value, allowed in (
            ("codebook_update", codebook_update, UPDATES),
            ("recon_loss", recon_loss, RECON_LOSSES),
            ("lpips_net", lpips_net, LPIPS_NETS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        self.codebook_update, self.recon_loss = codebook_update, recon_loss
        self.lpips_net, self.lpips_weight = lpips_net, float(lpips_weight)
        self.budget, self.region = float(budget), region
        self.budget_weight, self.gumbel_tau = float(budget_weight), float(gumbel_tau)
        self.fine = fine  # fine grid side
        self.coarse = fine // region  # coarse grid side
        self.regions = self.coarse**2  # N
        self.num_tokens = fine * fine  # maximum slots = region^2 * N

        down: list[nn.Module] = []
        for _ in range(int(math.log2(region))):
            down += [nn.Conv2d(channels, channels, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.coarse_down = nn.Sequential(*down)
        self.coarse_head = GridHead(channels, res_blocks, res_channels, code_dim)
        groups = math.gcd(32, code_dim)  # the released config: GroupNorm with 32 groups
        self.norm_fine = nn.GroupNorm(groups, code_dim, eps=1e-6)
        self.norm_coarse = nn.GroupNorm(groups, code_dim, eps=1e-6)
        self.router = nn.Sequential(
            nn.Conv2d(2 * code_dim, 2 * code_dim, kernel_size=1),
            nn.SiLU(),
            nn.Conv2d(2 * code_dim, 2, kernel_size=1),
        )
        if codebook_update == "ema":
            self.quantiser = EMACodebook(
                codebook_size=codebook_size, dim=code_dim, decay=ema_decay, restart=restart_unused
            )
        else:
            self.quantiser = VectorQuantiser(
                num_tokens=fine * fine,
                dim=code_dim,
                codebook_size=codebook_size,
                codebook="shared",
                offset=False,
                beta_codebook=beta_codebook,
                beta_commit=beta_commit,
                init_range=1.0 / codebook_size,
            )
        self.beta_codebook, self.beta_commit = float(beta_codebook), float(beta_commit)
        self.pos = nn.Parameter(
            nn.init.trunc_normal_(torch.empty(1, code_dim, fine, fine), std=0.02)
        )
        self.build_decoder()

    # -- helpers ----------------------------------------------------------------------------
    def _up(self, m: Tensor) -> Tensor:
        """Repeat a coarse map ``[..., hc, wc]`` to the fine grid ``[..., hf, wf]``."""
        r = self.region
        return m.repeat_interleave(r, dim=-2).repeat_interleave(r, dim=-1)

    def _layout(self, codes_fine: Tensor, refine: Tensor) -> Tensor:
        """Fine-grid codes ``[B, hf*wf]`` + mask ``[B, hc, wc]`` -> slot layout ``[B, T]``."""
        b, r, c = codes_fine.shape[0], self.region, self.coarse
        g = codes_fine.reshape(b, c, r, c, r).permute(0, 1, 3, 2, 4).reshape(b, c * c, r * r)
        keep = refine.reshape(b, c * c, 1)
        rest = torch.where(keep, g[:, :, 1:], torch.full_like(g[:, :, 1:], -1))
        return torch.cat([g[:, :, :1], rest], dim=2).reshape(b, -1)

    def _unlayout(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """Slot layout ``[B, T]`` -> (fine-grid codes ``[B, hf*wf]``, mask ``[B, hc, wc]``)."""
        b, r, c = codes.shape[0], self.region, self.coarse
        if codes.dim() != 2 or codes.shape[1] != self.num_tokens:
            raise ValueError(
                f"expected codes of shape [B, {self.num_tokens}], got {tuple(codes.shape)}"
            )
        g = codes.long().reshape(b, c * c, r * r)
        refine = g[:, :, 1] >= 0
        g = torch.where(refine[:, :, None], g, g[:, :, :1].expand_as(g))
        fine = g.reshape(b, c, c, r, r).permute(0, 1, 3, 2, 4).reshape(b, -1)
        return fine, refine.reshape(b, c, c)

    def _decode_fine(self, q: Tensor) -> Tensor:
        """Quantised fine-grid tokens ``[B, hf*wf, D]`` -> image."""
        # float32 sum whatever the autocast state, so forward and decode(codes) agree exactly
        grid = tokens_to_grid(q.float(), self.fine, self.fine)
        return self.decoder(grid + self.pos.float())

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(h_fine [B, D, hf, wf], h_coarse [B, D, hc, wc])`` (pre-quantisation)."""
        feat = self.encoder.trunk(x)
        return self.encoder.head(feat), self.coarse_head(self.coarse_down(feat))

    def router_logits(self, h_fine: Tensor, h_coarse: Tensor) -> Tensor:
        """Routing logits ``[B, 2, hc, wc]``: channel 0 = keep coarse, 1 = refine."""
        pooled = F.avg_pool2d(self.norm_fine(h_fine), self.region)
        return self.router(torch.cat([self.norm_coarse(h_coarse), pooled], dim=1))

    def sample_gate(self, logits: Tensor) -> Tensor:
        """One-hot gate ``[B, 2, hc, wc]`` (float32): a hard Gumbel-softmax sample with a
        straight-through gradient in training, the argmax in evaluation."""
        if self.training:
            return F.gumbel_softmax(logits.float(), tau=self.gumbel_tau, hard=True, dim=1)
        return F.one_hot(logits.argmax(1), 2).permute(0, 3, 1, 2).float()

    def _fine_codes(self, tokens: Tensor, refine: Tensor) -> Tensor:
        """Nearest codes on the fine grid; every copy of a coarse vector takes the code of the
        region's first cell (so the slot layout describes exactly what was decoded)."""
        codes = self.quantiser.nearest(tokens)
        first = self._unlayout(self._layout(codes, torch.zeros_like(refine)))[0]
        cell_refined = self._up(refine).reshape(codes.shape[0], -1)
        return torch.where(cell_refined, codes, first)

    # -- interface ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> ModelOutput:
        h_fine, h_coarse = self.features(x)
        logits = self.router_logits(h_fine, h_coarse)
        gate = self.sample_gate(logits)
        refine = gate[:, 1] > 0.5  # [B, hc, wc]
        h_dual = torch.where(self._up(refine)[:, None], h_fine, self._up(h_coarse))
        if self.training:  # value 1, carries the router's gradient (original's gate_grad)
            h_dual = h_dual * self._up(gate.max(dim=1).values)[:, None].to(h_dual.dtype)
        tokens = grid_to_tokens(h_dual)
        codes_fine = self._fine_codes(tokens, refine)
        with torch.autocast(device_type=x.device.type, enabled=False):
            e = self.quantiser.lookup(codes_fine)  # the codebook before this step's update
            zf = tokens.float()
            m = torch.where(self._up(refine), 1.0, 1.0 / self.region**2)
            m = m.reshape(x.shape[0], -1, 1)
            losses = {"commit": self.beta_commit * (m * (zf - e.detach()).square()).mean()}
            if self.codebook_update == "gradient":
                losses["codebook"] = self.beta_codebook * (m * (zf.detach() - e).square()).mean()
            q = straight_through(zf, e)
            if self.training:  # the sampled hard gate (straight-through), as the original
                losses["budget"] = budget_loss(gate[:, 1], self.budget, self.budget_weight)
            else:  # deterministic diagnostic: the expected refined fraction
                losses["budget"] = budget_loss(
                    torch.softmax(logits.float(), dim=1)[:, 1], self.budget, self.budget_weight
                )
        restarted = None
        if self.training and self.codebook_update == "ema":
            restarted = self.quantiser.update(zf, codes_fine)
        recon = self._decode_fine(q)
        losses.update(self.reconstruction_losses(recon, x))
        codes = self._layout(codes_fine, refine)
        with torch.no_grad():
            frac = refine.float().mean()
            stats = {
                "fine_ratio": frac,
                "bits": self.bits_for_codes(codes).mean(),
                "fine_prob": torch.softmax(logits.float(), dim=1)[:, 1].mean(),
                "perplexity": code_perplexity(codes, self.codebook_size),
            }
            if restarted is not None:
                stats["restarted"] = restarted
        return ModelOutput(recon, losses, codes, stats)

    def reconstruction_losses(self, recon: Tensor, x: Tensor) -> dict[str, Tensor]:
        """``{"l1", "lpips"}``, ``{"l1"}`` or ``{"mse"}`` (see the module docstring)."""
        if self.recon_loss == "mse":
            return {"mse": F.mse_loss(recon.float(), x.float())}
        out = {"l1": 2.0 * (recon.float() - x.float()).abs().mean()}  # on the [-1, 1] scale
        if self.recon_loss == "l1_lpips":
            out["lpips"] = self.lpips_weight * lpips_loss(recon, x, self.lpips_net)
        return out

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        h_fine, h_coarse = self.features(x)
        refine = self.router_logits(h_fine, h_coarse).argmax(1) == 1
        h_dual = torch.where(self._up(refine)[:, None], h_fine, self._up(h_coarse))
        return self._layout(self._fine_codes(grid_to_tokens(h_dual), refine), refine)

    def decode(self, codes: Tensor) -> Tensor:
        fine, _ = self._unlayout(codes)
        if bool((fine < 0).any()):
            raise ValueError("slot 0 of every region must hold a code (>= 0)")
        return self._decode_fine(self.quantiser.lookup(fine))

    def bits_per_image(self) -> float:
        """Expected bits under the budget: ``(N + (region^2-1) r N) log2 K + N`` (mask bits)."""
        n = self.regions
        return (n + (self.region**2 - 1) * self.budget * n) * math.log2(self.codebook_size) + n

    def bits_for_codes(self, codes: Tensor) -> Tensor:
        """Measured bits per image: ``#used codes * log2 K + N`` (one routing bit per region)."""
        used = (codes >= 0).sum(1).double()
        return used * math.log2(self.codebook_size) + float(self.regions)
