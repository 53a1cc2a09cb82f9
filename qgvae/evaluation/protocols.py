"""The two evaluation protocols and the notes that document every decision behind them.

- ``vqwae``  (Table 1 of the paper, measured with VQ-WAE's released evaluation scripts): for
  SSIM, PSNR and LPIPS both images are resized to 256x256 with PIL's default filter of the
  Pillow that VQ-WAE pins (8.2.0: BICUBIC); for rFID each image is resized to 229x229 with PIL
  BILINEAR (``fid_score.py``'s ``imread``) and Inception resizes that to 299x299.
- ``native`` the same metrics at the dataset's own resolution (Inception still resizes to 299).

A :class:`Protocol` says which resize each metric family sees; the resized images of a batch are
computed once and shared. ``PROTOCOL_NOTES`` records every decision (written to metrics.json).
This module is the one definition of ``PROTOCOLS`` in the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """What the metrics of one protocol see. ``None`` sizes: the dataset's own resolution."""

    name: str
    pixel_size: int | None  # SSIM / PSNR / LPIPS images resized (PIL) to this square size
    pixel_resample: str
    fid_size: int | None  # Inception input resized (PIL) to this square size first
    fid_resample: str

    def describe(self) -> dict[str, object]:
        return {
            "pixel_metrics": "native"
            if self.pixel_size is None
            else {"library": "PIL", "filter": self.pixel_resample, "size": self.pixel_size},
            "inception_input": "native"
            if self.fid_size is None
            else {"library": "PIL", "filter": self.fid_resample, "size": self.fid_size},
        }


VQWAE = Protocol("vqwae", 256, "bicubic", 229, "bilinear")
NATIVE = Protocol("native", None, "bilinear", None, "bilinear")
PROTOCOL_SPECS = {p.name: p for p in (VQWAE, NATIVE)}
PROTOCOLS = tuple(PROTOCOL_SPECS)
PSNR_CAP_DB = 100.0  # per-image PSNR is capped here (MSE floor 1e-10); capped images are counted

PROTOCOL_NOTES = [
    "Protocol 'vqwae' (the paper's Table 1, which copies VQ-WAE's numbers and extends them with "
    "VQ-WAE's released scripts evaluations/evaluation.py and evaluations/fid_score.py): for "
    "SSIM, PSNR and LPIPS, original and reconstruction are each resized to 256x256 with PIL "
    "Image.resize and no filter argument, whose default in the Pillow VQ-WAE pins (8.2.0) is "
    "BICUBIC (rounded to uint8, as when resizing saved PNGs). For rFID, fid_score.py's imread "
    "resizes each image to 229x229 with PIL BILINEAR and pytorch-fid's InceptionV3 resizes that "
    "to 299x299; this harness does the same.",
    "Not reproduced from VQ-WAE's evaluation.py: for a ground-truth file N.png it scores every "
    "reconstruction whose name starts with N (1.png against 1.png, 10.png, 100.png, ...) and "
    "keeps the best, which inflates its averages; here each reconstruction is scored against its "
    "own original only. fid_score.py also drops the last partial batch of 192 images; here every "
    "image counts.",
    "Protocol 'native': the same metrics at the dataset's own resolution, no resizing by us. "
    "pytorch-fid's InceptionV3 resizes every input internally to 299x299 (F.interpolate "
    "bilinear, align_corners=False) in both protocols.",
    "SSIM: skimage.metrics.structural_similarity(win_size=11, data_range=1, "
    "gaussian_weights=False, use_sample_covariance=True, K1=0.01, K2=0.03; channel_axis for RGB, "
    "i.e. the mean of the per-channel SSIMs) per image on float64 images in [0, 1] (uint8 / "
    "255), then the mean over images; images smaller than 11x11 get no SSIM (null, with the "
    "reason) while the other metrics are computed. PSNR: "
    "skimage.metrics.peak_signal_noise_ratio(data_range=1) per image (MSE over all pixels and "
    "channels), then the mean of the per-image PSNRs (not the PSNR of the mean MSE); a "
    f"pixel-identical pair would be infinite, so per-image PSNR is capped at {PSNR_CAP_DB:g} dB "
    "(MSE floor 1e-10) and psnr.n_capped counts the capped images. std is the sample standard "
    "deviation (ddof=1) over images. On CUDA the same formulas run in torch (float64), equal to "
    "scikit-image's within 1e-6.",
    "LPIPS: lpips 0.1.4, LPIPS(net='alex', version='0.1'), spatially averaged, inputs in [0, 1] "
    "with normalize=True (i.e. [-1, 1]); trunk weights read from the torch hub cache file named "
    "in 'weights', linear layers from the lpips package. The AlexNet trunk cannot take inputs "
    "smaller than 31x31, so native LPIPS is null (with a reason) for e.g. 28x28 MNIST.",
    "rFID: pytorch-fid 0.3.0's FID InceptionV3, 2048-d pool3 features, between the test "
    "originals and their reconstructions (the first n images; n recorded), float32 throughout. "
    "Mean and unbiased (n-1) covariance in float64. The Frechet trace term "
    "Tr sqrt(S1 S2) is computed from symmetric eigendecompositions ('eigh': the eigenvalues of "
    "S1^1/2 S2 S1^1/2) or, when both sets have at most 2048 images ('svd-lowrank'), as the sum of "
    "the singular values of B1^T B2 with S = B B^T (exact, and 0 for a set against itself); it "
    "equals pytorch-fid's scipy.linalg.sqrtm route to about 1e-12 relative. With n < 2049 the "
    "covariances are rank-deficient and FID is biased upward: compare rFID only at equal n.",
    "The per-image Inception features of the reconstructions are kept beside metrics.json "
    "(features_<protocol>.npy) and those of the originals in the shared feature cache, so that "
    "rFID can be resampled (bootstrap intervals) without running Inception again.",
    "Grayscale images (C=1) are repeated to three channels for LPIPS and Inception; SSIM and "
    "PSNR are computed on the single channel (identical to computing them on VQ-WAE's RGB-tiled "
    "PNGs, whose three channels are equal).",
    "Inputs are the producer's uint8 images (rounded and clipped). VQ-WAE's tensor2im truncated "
    "(x*255 cast to uint8) when writing its PNGs; that is not reproduced.",
    "On CUDA, TF32 is disabled while the metric networks run (full float32, as on CPU).",
    "Floor and input dependence: 'floor' is the training split's mean image (rounded to uint8) "
    "used as the reconstruction of every test image, scored with the same protocols; "
    "psnr_gain_over_floor_db is a run's mean PSNR minus the floor's. psnr_shuffled scores each "
    "reconstruction against the original of the next image in its evaluation batch (a fixed "
    "derangement); input_dependence_db = psnr.mean - psnr_shuffled.mean is about 0 for "
    "reconstructions that do not depend on their input.",
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
