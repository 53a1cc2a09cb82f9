"""SQ-VAE, Gaussian variant (Takida et al. 2022, "SQ-VAE: Variational Bayes on Discrete
Representation with Self-annealed Stochastic Quantization").

Registry name ``sqvae``. This is what the QG-VAE paper's "SVQ-VAE" column reports (it carries
VQ-WAE's SQ-VAE numbers, produced by the ``GaussianSQVAE`` class of github.com/VuongLong/VQ-WAE,
itself a copy of github.com/sony/sqvae ``vision/model.py`` / ``quantizer.py``; both were read
for this module). For split VQ (Strong et al. 2021), the other reading of that column's
citation, see :mod:`baselines.splitvq`.

Model (``param_var_q="gaussian_1"``: one learned scalar variance):
    z        encoder output, one ``D``-vector per grid cell (:mod:`baselines.grid`);
    var_q    ``exp(0) + exp(s)`` with the learned scalar ``s`` (initialised ``init_log_var_q``,
             log 20 in every released config). The ``exp(0)`` is the code's ``log_var_q = 0``
             of the gaussian_1 path, kept as is (so var_q > 1; the encoder scales z instead);
    logits   ``-||z - b_k||^2 / (2 var_q)`` over the K codewords ``b_k`` (float32);
    training stochastic quantisation: a Gumbel-softmax sample
             ``w = softmax((logits + g) / temperature)``, ``z_q = w @ codebook`` (SOFT, no
             straight-through), temperature ``temperature_init * exp(-temperature_decay * step)``
             floored at ``temperature_min`` (the code's ``_set_temperature``, applied in
             :meth:`SQVAE.after_step`); ``codes`` are the sampled ``argmax(logits + g)``;
    eval     deterministic: the code of highest probability, i.e. the nearest codeword (var_q is a
             scalar), ``z_q = b_code`` (the code's ``flg_quant_det=True``).

Loss terms (per image, summed over pixels / cells like the original, averaged over the batch):
    ``nll``             decoder negative log-likelihood. ``decoder_variance="arelbo"`` (the code's
                        default flag ``arelbo=True``): ``dim_x / 2 * log(SSE)`` with ``SSE`` the
                        batch mean of the per-image sum of squared errors and ``dim_x = C*H*W``
                        (Lin et al. 2021, the variance set to its MLE); ``"learned"``:
                        ``SSE / (2 sigma^2) + dim_x / 2 * log sigma^2`` with learned
                        ``log sigma^2`` initialised log 0.1;
    ``kld_discrete``    ``sum_{cells,k} p log p`` (negative entropy of the categorical posterior);
    ``kld_continuous``  ``sum_{cells,d} (z - z_q)^2 / (2 var_q)``.
``stats`` carry ``mse`` (mean squared error, for comparison with the other methods), ``var_q``,
``temperature`` and ``perplexity`` (detached 0-d tensors). The objective is large and can be
negative (per-image log scale), which Adam does not mind; do not compare its value with the other
methods' losses.

Rate: ``h * w * log2(K)`` bits, as VQ-VAE (576 at the CIFAR setting).

Deviations from the original code:
- network: the harness's grid network (:mod:`baselines.grid`: VQ-WAE paper architecture, no
  BatchNorm, no Sigmoid output) instead of the code's BatchNorm ResNet with Sigmoid output;
- codebook storage / nearest-code search / lookup are the shared
  :class:`qgvae.models.VectorQuantiser` (``codebook="shared", offset=False``), re-initialised
  N(0, 1) like the code (``torch.randn``); its own VQ loss terms are not used;
- VQ-WAE's copy applies an extra ``pre_quantization_conv_m`` (1x1 conv, 128 -> 64 channels) to
  the encoder output; here the grid encoder's own final 1x1 conv to ``code_dim`` plays that role;
- the temperature lives in a buffer so that a resumed run continues the same schedule;
- eval losses are computed like training ones but with the hard code (the code computes the
  same in ``_inference``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qgvae.models.interface import ModelOutput
from qgvae.models.quantise import VectorQuantiser, code_perplexity, squared_distances

from .grid import GridAutoencoder

__all__ = ["SQVAE", "sq_logits", "gumbel_softmax_sample"]


def sq_logits(z: Tensor, codebook: Tensor, var_q: Tensor | float) -> Tensor:
    """``-||z - b_k||^2 / (2 var_q)`` in float32.

    ``z [..., D]``, ``codebook [K, D]`` -> ``[..., K]``.
    """
    dist = squared_distances(z, codebook)
    return (
        -0.5
        * dist
        / torch.as_tensor(var_q, dtype=torch.float32, device=dist.device).clamp_min(1e-10)
    )


def gumbel_softmax_sample(
    logits: Tensor, temperature: Tensor | float, generator: torch.Generator | None = None
) -> Tensor:
    """``softmax((logits + g) / temperature)`` with standard Gumbel noise ``g`` (SOFT sample).

    ``argmax`` of the result is an exact sample of ``Categorical(softmax(logits))`` (Gumbel-max)
    for every temperature; as the temperature goes to 0 the result becomes that one-hot sample.
    """
    u = torch.rand(logits.shape, device=logits.device, dtype=torch.float32, generator=generator)
    g = -torch.log(-torch.log(u + 1e-10) + 1e-10)  # the code's sample_gumbel
    tau = torch.as_tensor(temperature, dtype=torch.float32, device=logits.device).clamp_min(1e-8)
    return torch.softmax((logits.float() + g) / tau, dim=-1)


class SQVAE(GridAutoencoder):
    """Gaussian SQ-VAE (gaussian_1) on the shared grid network. See the module docstring."""

    display_name = "SQ-VAE"

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
        init_log_var_q: float = math.log(20.0),
        temperature_init: float = 1.0,
        temperature_decay: float = 1e-5,
        temperature_min: float = 0.0,
        decoder_variance: str = "arelbo",
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
        if decoder_variance not in ("arelbo", "learned"):
            raise ValueError(
                f"decoder_variance must be 'arelbo' or 'learned', got {decoder_variance!r}"
            )
        if temperature_init <= 0 or temperature_decay < 0 or temperature_min < 0:
            raise ValueError(
                "temperature_init must be > 0, temperature_decay and temperature_min >= 0"
            )
        self.quantiser = VectorQuantiser(
            num_tokens=self.cells,
            dim=code_dim,
            codebook_size=codebook_size,
            codebook="shared",
            offset=False,
            init_range=1.0,
        )
        with torch.no_grad():
            self.quantiser.codebooks.normal_()  # the code: nn.Parameter(torch.randn(K, D))
        self.log_param_q = nn.Parameter(torch.tensor(float(init_log_var_q)))
        self.decoder_variance = decoder_variance
        if decoder_variance == "learned":
            self.logvar_x = nn.Parameter(torch.tensor(math.log(0.1)))
        self.temperature_init = float(temperature_init)
        self.temperature_decay = float(temperature_decay)
        self.temperature_min = float(temperature_min)
        self.register_buffer("temperature", torch.tensor(float(temperature_init)))
        self.dim_x = in_channels * image_size * image_size

    @property
    def codebook(self) -> Tensor:
        """The shared codebook ``[K, D]`` (a view of the quantiser's parameter)."""
        return self.quantiser.codebooks[0]

    def var_q(self) -> Tensor:
        """``exp(0) + exp(s)``: the gaussian_1 posterior variance (see module docstring)."""
        return 1.0 + self.log_param_q.float().exp()

    def forward(self, x: Tensor) -> ModelOutput:
        z = self.tokens(x)
        b = x.shape[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            zf = z.float()
            var_q = self.var_q()
            logits = sq_logits(zf, self.codebook, var_q)  # [B, T, K]
            if self.training:
                w = gumbel_softmax_sample(logits, self.temperature)
                codes = w.argmax(-1)
                zq = torch.matmul(w, self.codebook.float())
            else:
                codes = self.quantiser.nearest(z)
                zq = self.quantiser.lookup(codes)
            log_p = torch.log_softmax(logits, dim=-1)
            kld_discrete = (log_p.exp() * log_p).sum() / b
            kld_continuous = ((zf - zq).square().sum((1, 2)) * (0.5 / var_q)).mean()
        recon = self.decode_tokens(zq.to(z.dtype))
        sse = (recon.float() - x.float()).square().sum() / b
        if self.decoder_variance == "arelbo":
            nll = 0.5 * self.dim_x * torch.log(sse)
        else:
            nll = sse / (2.0 * self.logvar_x.exp()) + 0.5 * self.dim_x * self.logvar_x
        losses = {"nll": nll, "kld_discrete": kld_discrete, "kld_continuous": kld_continuous}
        stats = {
            "mse": sse.detach() / self.dim_x,
            "var_q": var_q.detach(),
            "temperature": self.temperature.detach().clone(),
            "perplexity": code_perplexity(codes, self.codebook_size),
        }
        return ModelOutput(recon, losses, codes, stats)

    def after_step(self, step: int) -> dict[str, float]:
        """Temperature schedule of the original trainer (``_set_temperature``) for the next step."""
        t = max(
            self.temperature_init * math.exp(-self.temperature_decay * step), self.temperature_min
        )
        self.temperature.fill_(t)
        return {"temperature": t}
