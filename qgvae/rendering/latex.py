"""LaTeX text for the tables and the report: escaping, numbers, the tabular (pandas
``Styler.to_latex``), footnotes and the table environment. Only glyphs of pdflatex's default
fonts and the booktabs package are used.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .results import DDOF

DASH = "--"
_UNICODE = {
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "−": "-",
    "–": "--",
    "—": "---",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "→": r"$\rightarrow$",
    "…": "...",
    "’": "'",
    "‘": "`",
    "“": "``",
    "”": "''",
    "°": r"$^\circ$",
    "µ": r"$\mu$",
}
# Only glyphs of the default OT1/OMS fonts, so no TS1 (bitmap) font is ever needed.
_SPECIAL = {
    "\\": r"\ensuremath{\backslash}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\ensuremath{\$}",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}",
    "|": r"\ensuremath{|}",
}


def latex_escape(text: Any) -> str:
    """Plain text -> LaTeX that pdflatex typesets literally (specials escaped, unicode mapped)."""

    def one(ch: str) -> str:
        if ch in _SPECIAL or ch in _UNICODE or ord(ch) < 128:
            return _SPECIAL.get(ch) or _UNICODE.get(ch) or ch
        ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        return "".join(_SPECIAL.get(c, c) for c in ascii_) or "?"

    return "".join(map(one, str(text)))


def latex_unescape(text: str) -> str:
    """Undo the escaping of ``&%$#_{}`` (for readable names in footnotes)."""
    return re.sub(r"\\([&%$#_{}])", r"\1", text)


def latex_prose(text: Any) -> str:
    """Escaped running text; ``256x256`` becomes ``256$\\times$256``; whitespace folded."""
    return re.sub(r"(\d)x(\d)", r"\1$\\times$\2", latex_escape(" ".join(str(text).split())))


def latex_path(path: Any) -> str:
    """A file path in running text: escaped, with break points after every slash."""
    return latex_escape(path).replace("/", r"/\allowbreak{}")


def fmt_num(x: float | None, decimals: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    s = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    return s.lstrip("+-") if float(s) == 0.0 else s  # no "-0.00" / "+0.00"


def fmt_stat(values: Sequence[float], decimals: int) -> str:
    """``$m \\pm s$`` (ddof=DDOF) for >= 2 values, ``$m$`` for one, ``--`` for none."""
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if vals.size == 0:
        return DASH
    mean = fmt_num(float(np.mean(vals)), decimals)
    if vals.size == 1:
        return f"${mean}$"
    return f"${mean} \\pm {fmt_num(float(np.std(vals, ddof=DDOF)), decimals)}$"


def tabular(
    header: Sequence[Any], rows: Sequence[Sequence[str]], spec: str, before: Mapping = None
) -> str:
    """A booktabs tabular (pandas ``Styler.to_latex``) of cells already in LaTeX.

    ``header``: the column labels, or (group, label) pairs for a two-level header (the groups
    spanned by ``\\multicolumn`` and ruled by ``\\cmidrule``); ``before``: {row number: a line
    put before that body row (``\\midrule``, ``\\addlinespace``, a block title)}.
    """
    two = isinstance(header[0], tuple)
    columns = pd.MultiIndex.from_tuples(header) if two else pd.Index(header)
    frame = pd.DataFrame([list(r) for r in rows], columns=columns)
    style = frame.style.hide(axis="index")
    lines = style.to_latex(column_format=spec, hrules=True, multicol_align="c").split("\n")[:-1]
    body = lines.index("\\midrule") + 1
    for i in sorted(before or {}, reverse=True):
        lines.insert(body + i, before[i])
    if two:  # a rule under every named group of the first header row
        groups, rules = [g for g, _ in header], []
        for i, g in enumerate(groups):
            if g.strip() and (i == 0 or groups[i - 1] != g):
                last = i + next((k for k, h in enumerate(groups[i:]) if h != g), len(groups) - i)
                rules.append(f"\\cmidrule(lr){{{i + 1}-{last}}}")
        lines.insert(3, " ".join(rules))
    return "\n".join(lines)


class Notes:
    """Footnote categories with letters; each category lists the items it applies to."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}  # header -> items, in order of first use

    def mark(self, header: str, item: str | None = None) -> str:
        """Register ``item`` under ``header``; returns the footnote letter."""
        items = self.items.setdefault(header, [])
        if item and item not in items:
            items.append(item)
        i = list(self.items).index(header)
        return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"n{i}"

    @staticmethod
    def sup(letters: Sequence[str]) -> str:
        return f"\\textsuperscript{{{','.join(letters)}}}" if letters else ""

    def render(self) -> str:
        parts = []
        for header, items in self.items.items():
            text = f"\\textsuperscript{{{self.mark(header)}}}\\,{header}"
            parts.append((text + (": " + "; ".join(items) if items else "")).rstrip(".") + ".")
        return "\\par\\smallskip\\footnotesize " + "\n\\par ".join(parts) if parts else ""


def table_env(name, caption, body, notes: Notes, sources, protocol, size="\\small") -> str:
    """One ``table`` float: source comments, caption, label, the centred tabular (centred even
    when wider than the text block: no overfull box, no extra package), footnotes."""
    lines = [
        f"% qgvae-bench table '{name}' (protocol {protocol}), written by qgvae.rendering.tables;",
        "% do not edit: re-render with `qgvae tables`. Needs \\usepackage{booktabs}.",
        "% Sources:",
        *(f"%   {s}" for s in sources),
        "\\begin{table}[!htbp]",
        "\\centering",
        size,
        "\\setlength{\\tabcolsep}{4pt}",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:{name}}}",
        "\\makebox[\\linewidth][c]{%",
        body + "}",
        notes.render(),
        "\\end{table}",
        "",
    ]
    return "\n".join(x for x in lines[:-1] if x) + "\n"
