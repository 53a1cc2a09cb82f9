"""SQ-VAE, Gaussian variant (Takida et al. 2022, "SQ-VAE: Variational Bayes on Discrete
Representation with Self-annealed Stochastic Quantization").

Registry name ``sqvae``. This is what the QG-VAE paper's "SVQ-VAE" column reports (it carries
VQ-WAE's SQ-VAE numbers). Read for this module: github.com/sony/sqvae (commit dc88ab1a)
``vision/model.py``, ``quantizer.py``, ``trainer.py``, ``networks/`` and ``configs/``, and
VQ-WAE's copy (github.com/VuongLong/VQ-WAE ``model.py`` ``GaussianSQVAE``,
``configs/{mnist,cifar10}_gauss_1.yaml``, ``celeba_sqvae_C512.yaml``). For split VQ (Strong et
al. 2021), the other reading of that column's citation, see :mod:`baselines.splitvq`.

Which network. VQ-WAE's own ``GaussianSQVAE`` cannot run: it applies ``pre_quantization_conv_m``
(a 1x1 conv from 128 to 64 channels, ``model.py`` 199, 213-214) to the 64-channel output of its
``net_32`` / ``net_64`` encoders. So VQ-WAE's published SQ-VAE numbers came from code outside
that repository, and the code they name is sony/sqvae, whose configs VQ-WAE copied. The configs
therefore use sony's networks (``network="sqvae_net32"``: BatchNorm, Sigmoid, 64 wide, 154,336 /
154,147 parameters on RGB; ``"vqwae_net64"`` on CelebA, the same in both repositories) with
sony's ``weights_init`` (``init="released"``). MNIST runs at 32 px with K = 512 and
``init_log_var_q = log 10``, as VQ-WAE's copy of the MNIST config (sony's own trains at 28 px,
K = 128, with ``net_28``). ``network="vqwae_net32"`` (VQ-WAE's VQ-VAE network) and ``"grid"``
are the other options.

Model (``param_var_q="gaussian_1"``: one learned scalar variance):
    z        encoder output, one ``D``-vector per grid cell (:mod:`baselines.grid`);
    var_q    ``exp(0) + exp(s)`` with the learned scalar ``s`` (initialised ``init_log_var_q``:
             log 20 for CIFAR-10 and CelebA, log 10 for MNIST in the released configs). The
             ``exp(0)`` is the code's ``log_var_q = 0`` of the gaussian_1 path (``model.py``
             60-62, 73): the variance starts at 1 + 20 = 21 (1 + 10 = 11 on MNIST) and never
             falls below 1 (the encoder scales z instead);
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
methods' losses. The original selects ``best.pt`` on the deterministic validation loss: the
configs set ``train.val_metric: loss``.

Short runs. Training decodes a soft mixture of codewords, evaluation the hard nearest codeword;
the two agree only once ``var_q`` and the temperature have annealed (thousands of steps: in the
runs below var_q fell by 0.25-1.0 per 100 Adam steps at lr 1e-3). Measured on ``photos`` with
the quick config's widths (batch 8; the mean image scores 14.4 dB): with the harness's earlier
network and initialisation (``"grid"``, ``"randn"``: no output activation) the validation PSNR
is 8.2 dB at step 100 and first reaches the mean image's 14.4 dB after about 1,200 steps, while
the training (soft) reconstruction is at 15-21 dB; that is the quick run's 6.2 dB. With sony's
network and initialisation (Sigmoid output) it is 16.3 dB at step 100 and 17.9 dB at step
1,000. Checked line by line against ``quantizer.py`` 57-91 and ``model.py`` 60-111: no bug.

Rate: ``h * w * log2(K)`` bits, as VQ-VAE (576 at the CIFAR setting).

Deviations from the original code:
- codebook storage / nearest-code search / lookup are the shared
  :class:`qgvae.models.VectorQuantiser` (``codebook="shared", offset=False``), initialised
  N(0, 1) like the code (``torch.randn``); its own VQ loss terms are not used;
- MNIST at 32 px (VQ-WAE's data pipeline) on sony's 32-px network with one input channel;
- the temperature lives in a buffer so that a resumed run continues the same schedule;
- eval losses are computed like training ones but with the hard code (the code computes the
  same in ``_inference``); reconstructions are rounded to uint8 (VQ-WAE's code truncates).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qgvae.models.interface import ModelOutput
from qgvae.models.quantise import VectorQuantiser, code_perplexity, squared_distances

from .grid import GridAutoencoder, initialise

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
        network: str = "grid",
        init: str = "released",
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
            network=network,
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
        initialise(self, self.quantiser.codebooks, init)
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
