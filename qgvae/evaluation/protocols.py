"""The two evaluation protocols and the notes that document every decision behind them.

- ``vqwae``  (Table 1 of the paper, from VQ-WAE's code): both images upscaled to 256x256 with
  PIL bilinear (uint8 result), then SSIM / PSNR / LPIPS / rFID on those images.
- ``native`` the same metrics at the dataset's own resolution.

The upscaled images of a batch are computed once and shared by SSIM, PSNR, LPIPS and the
Inception features. ``PROTOCOL_NOTES`` records every decision (it is written to metrics.json).
This module is the one definition of ``PROTOCOLS`` in the project.
"""

from __future__ import annotations

from collections.abc import Sequence

PROTOCOLS = ("vqwae", "native")
VQWAE_SIZE = 256
VQWAE_RESAMPLE = "bilinear"

PROTOCOL_NOTES = [
    "Protocol 'vqwae' (the paper's Table 1, after VQ-WAE's code): original and reconstruction "
    "are each upscaled to 256x256 with PIL Image.resize(BILINEAR) on the uint8 image (result "
    "rounded to uint8, as when resizing saved PNGs); SSIM, PSNR, LPIPS and the Inception "
    "features all use these same upscaled images. VQ-WAE's README calls "
    "evaluations/evaluation.py, which is not in its public repository, so the resampling filter "
    "could not be checked: bilinear is an assumption (note PIL's Image.resize defaults to "
    "BICUBIC since Pillow 7 when no filter is given, torchvision's Resize to BILINEAR).",
    "Protocol 'native': the same metrics at the dataset's own resolution, no resizing by us. "
    "pytorch-fid's InceptionV3 resizes every input internally to 299x299 (F.interpolate "
    "bilinear, align_corners=False) in both protocols.",
    "SSIM: skimage.metrics.structural_similarity(win_size=11, data_range=1, "
    "gaussian_weights=False, use_sample_covariance=True, K1=0.01, K2=0.03; channel_axis for RGB, "
    "i.e. the mean of the per-channel SSIMs) per image on float64 images in [0, 1] (uint8 / "
    "255), then the mean over images. PSNR: "
    "skimage.metrics.peak_signal_noise_ratio(data_range=1) per image (MSE over all pixels and "
    "channels), then the mean of the per-image PSNRs (not the PSNR of the mean MSE). std is the "
    "sample standard deviation (ddof=1) over images. A pixel-identical pair has PSNR = inf: then "
    "psnr.mean/std are null and n_infinite, mean_finite, std_finite are given.",
    "LPIPS: lpips 0.1.4, LPIPS(net='alex', version='0.1'), spatially averaged, inputs in [0, 1] "
    "with normalize=True (i.e. [-1, 1]); trunk weights read from the torch hub cache file named "
    "in 'weights', linear layers from the lpips package. The AlexNet trunk cannot take inputs "
    "smaller than 31x31, so native LPIPS is null (with a reason) for e.g. 28x28 MNIST.",
    "rFID: pytorch-fid 0.3.0's FID InceptionV3, 2048-d pool3 features, between the test "
    "originals and their reconstructions (the first n images; n recorded). Features are streamed "
    "batch by batch into float64 sums and sums of outer products; mean and unbiased (n-1) "
    "covariance; Frechet distance with scipy.linalg.sqrtm of the covariance product as "
    "pytorch-fid does (eps=1e-6 on the diagonals if the root is not finite, imaginary part "
    "dropped if the diagonal's is within 1e-3 of zero). With n < 2049 the covariances are "
    "rank-deficient and FID is biased upward: compare rFID only at equal n.",
    "VQ-WAE's README runs fid_score.py on the image folders its trainer writes, which are at "
    "native resolution; the rFID that corresponds to that command is therefore "
    "protocols.native.rfid. protocols.vqwae.rfid feeds the 256x256 upscaled images to Inception "
    "(as this harness's vqwae protocol shares the upscaled images between all metrics).",
    "Grayscale images (C=1) are repeated to three channels for LPIPS and Inception; SSIM and "
    "PSNR are computed on the single channel (identical to computing them on VQ-WAE's RGB-tiled "
    "PNGs, whose three channels are equal).",
    "Inputs are the producer's uint8 images (rounded and clipped). VQ-WAE's tensor2im truncated "
    "(x*255 cast to uint8) when writing its PNGs; that is not reproduced.",
    "On CUDA, TF32 is disabled while the metric networks run (full float32, as on CPU).",
    "Code usage over the evaluated images: per token position, fraction = distinct codewords "
    "used / K and perplexity = exp(entropy in nats) of that position's code histogram, -1 "
    "entries ignored; means over positions with at least one valid entry. usage.pooled sums the "
    "histograms over positions (VQ-WAE's perplexity definition; meaningful only for a codebook "
    "shared by all positions).",
]


def normalize_protocols(protocols: Sequence[str] | str) -> tuple[str, ...]:
    """The requested protocols without repeats, in the given order; ``ValueError`` for an
    unknown name or none."""
    if isinstance(protocols, str):
        protocols = (protocols,)
    out = tuple(dict.fromkeys(protocols))
    bad = [p for p in out if p not in PROTOCOLS]
    if bad or not out:
        raise ValueError(f"unknown or empty protocols {list(protocols)}; choose from {PROTOCOLS}")
    return out
