"""Rendering: LaTeX tables, figures and the report, read only from files under ``results/``."""

from .figures import render_figures
from .tables import render_tables

__all__ = ["render_figures", "render_tables"]
