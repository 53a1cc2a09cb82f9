"""The model interface and QG-VAE: quantisers, U-Net blocks and the model itself."""

from .interface import ModelOutput, TokenAutoencoder
from .qgvae import QGVAE
from .quantise import QuantiserOutput, VectorQuantiser

__all__ = ["ModelOutput", "TokenAutoencoder", "QGVAE", "QuantiserOutput", "VectorQuantiser"]
