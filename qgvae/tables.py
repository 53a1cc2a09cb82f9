"""LaTeX tables (booktabs) of the benchmark, read only from files.

Inputs: ``results/plan.json`` (``qgvae.experiments.build_plan``), each run's ``metrics.json``
and ``config/paper_values.yaml`` (the paper's numbers and where they come from). Nothing is
trained or measured here; a run whose ``metrics.json`` is absent renders as ``--`` with a
footnote.

Outputs (``render_tables``)
---------------------------
``<out_dir>/<name>.tex``            one file per table under the main protocol (default
                                    ``vqwae``, the paper's), to ``\\input`` alone:
                                    ``table1_<dataset>``, ``table2``, ``ablation_<axis>``;
``<out_dir>/<name>_<protocol>.tex`` the same tables under every other protocol (``native``);
``<out_tex>``                       all of them (contents copied in, so it is self-contained),
                                    main protocol first.

Decisions
---------
- Spread over seeds: each run contributes its own mean over the N test images; a cell shows
  the mean over seeds +- the sample standard deviation (numpy ``ddof=1``, ``DDOF``); a cell with
  one seed shows the mean alone (footnoted).
- Table 1 / Table 2 keep the paper's layout (metric rows, method columns). Under the paper's
  protocol each metric has three rows: ours, the paper's value (verbatim, as printed) and
  Delta = ours - paper. Under other protocols only our row is printed (the paper has no such
  numbers). Bits per image and code usage (mean fraction of each token's codebook used, %) are
  extra rows.
- Ablations: rows = values (x method when an axis has several), columns = SSIM, PSNR, LPIPS,
  rFID, bits / image, code usage.
- Every caption states the protocol, N (rFID's N when it differs), the number of seeds and
  which seeds; every file starts with comments naming its source files.
- Required LaTeX packages: booktabs only.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .utils import write_text

log = logging.getLogger(__name__)

DDOF = 1
PROTOCOLS: tuple[str, ...] = ("vqwae", "native")
METRICS: tuple[str, ...] = ("ssim", "psnr", "lpips", "rfid")
# key -> (header, decimals, +1 if higher is better else -1)
METRIC_INFO: dict[str, tuple[str, int, int]] = {
    "ssim": ("SSIM", 3, +1),
    "psnr": ("PSNR", 2, +1),
    "lpips": ("LPIPS", 3, -1),
    "rfid": ("rFID", 2, -1),
}
EXTRA_INFO: dict[str, tuple[str, int]] = {
    "bits": ("Bits / image", 0),
    "usage": ("Code usage (\\%)", 1),
}
# shorter headers for the (wide) ablation tables; the caption spells them out
EXTRA_SHORT = {"bits": "Bits", "usage": "Usage (\\%)"}
DEFAULT_METHOD_NAMES = {"qgvae": "QG-VAE", "vqvae": "VQ-VAE", "sqvae": "SQ-VAE",
                        "vqwae": "VQ-WAE", "splitvq": "Split-VQ", "dqvae": "DQ-VAE"}
PACKAGES = ("booktabs",)
DASH = "--"

# ---------------------------------------------------------------------------------------------
# LaTeX helpers
# ---------------------------------------------------------------------------------------------
_UNICODE = {"±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$", "−": "-", "–": "--",
            "—": "---", "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\rightarrow$", "…": "...",
            "’": "'", "‘": "`", "“": "``", "”": "''", "°": r"$^\circ$", "µ": r"$\mu$"}
# Only glyphs of the default OT1/OMS fonts, so no TS1 (bitmap) font is ever needed.
_SPECIAL = {"\\": r"\ensuremath{\backslash}", "&": r"\&", "%": r"\%",
            "$": r"\ensuremath{\$}", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\ensuremath{<}",
            ">": r"\ensuremath{>}", "|": r"\ensuremath{|}"}


def latex_escape(text: Any) -> str:
    """Plain text -> LaTeX that pdflatex typesets literally (specials escaped, unicode mapped)."""
    out: list[str] = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append("".join(_SPECIAL.get(c, c) for c in ascii_) or "?")
    return "".join(out)


def latex_prose(text: Any) -> str:
    """Escaped running text; ``256x256`` becomes ``256$\\times$256``; whitespace folded."""
    return re.sub(r"(\d)x(\d)", r"\1$\\times$\2", latex_escape(" ".join(str(text).split())))


def latex_path(path: Any) -> str:
    """A file path in running text: escaped, with break points after every slash."""
    return latex_escape(path).replace("/", r"/\allowbreak{}")


def fmt_num(x: float, decimals: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    s = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    if float(s) == 0.0:  # no "-0.00" / "+0.00"
        s = s.lstrip("+-")
    return s


def fmt_stat(values: Sequence[float], decimals: int) -> str:
    """``$m \\pm s$`` (ddof=DDOF) for >= 2 values, ``$m$`` for one, ``--`` for none."""
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if vals.size == 0:
        return DASH
    mean = float(np.mean(vals))
    if vals.size == 1:
        return f"${fmt_num(mean, decimals)}$"
    sd = float(np.std(vals, ddof=DDOF))
    return f"${fmt_num(mean, decimals)} \\pm {fmt_num(sd, decimals)}$"


# ---------------------------------------------------------------------------------------------
# Reading runs
# ---------------------------------------------------------------------------------------------
def load_paper_values(path: str | Path | None) -> dict[str, Any]:
    import yaml

    if path is None:
        return {}
    return yaml.safe_load(Path(path).read_text()) or {}


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(data, None) or (None, reason); never raises."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable {path.name} ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"unreadable {path.name} (not an object)"
    return data, None


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def run_values(metrics: Mapping[str, Any], protocol: str) -> dict[str, float | None]:
    """The numbers one run contributes under ``protocol`` (None where absent)."""
    proto = (metrics.get("protocols") or {}).get(protocol) or {}
    out: dict[str, float | None] = {}
    for m in ("ssim", "psnr", "lpips"):
        out[m] = _num((proto.get(m) or {}).get("mean"))
    out["rfid"] = _num((proto.get("rfid") or {}).get("value"))
    out["bits"] = _num(metrics.get("bits_per_image"))
    frac = _num((metrics.get("usage") or {}).get("mean_fraction"))
    out["usage"] = None if frac is None else 100.0 * frac
    out["perplexity"] = _num((metrics.get("usage") or {}).get("mean_perplexity"))
    n = None
    for m in ("ssim", "psnr", "lpips"):
        n = n or _num((proto.get(m) or {}).get("n"))
    out["n"] = n if n is not None else (_num(metrics.get("n_images")) if proto else None)
    out["fid_n"] = _num((proto.get("rfid") or {}).get("n"))
    out["resolution"] = _num(proto.get("resolution"))
    return out


def seed_of(plan: Mapping[str, Any], run: str) -> int | None:
    info = (plan.get("runs") or {}).get(run)
    if info and "seed" in info:
        return int(info["seed"])
    m = re.search(r"seed(\d+)/?$", run)
    return int(m.group(1)) if m else None


@dataclass
class CellStats:
    """One table cell: per-seed numbers read from the cell's runs under one protocol."""

    cell: dict[str, Any]
    protocol: str
    planned: list[tuple[int | None, str]]                     # (seed, run folder)
    present: list[tuple[int | None, str]] = field(default_factory=list)
    missing: list[tuple[int | None, str, str]] = field(default_factory=list)  # seed, run, why
    per_run: list[dict[str, float | None]] = field(default_factory=list)
    grayscale: bool = False
    notes: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [r[key] for r in self.per_run if r.get(key) is not None]

    def mean(self, key: str) -> float | None:
        v = self.values(key)
        return float(np.mean(v)) if v else None

    def sd(self, key: str) -> float | None:
        v = self.values(key)
        return float(np.std(v, ddof=DDOF)) if len(v) > DDOF else None

    def ns(self, key: str = "n") -> set[int]:
        return {int(v) for v in self.values(key)}

    @property
    def seeds_present(self) -> list[int | None]:
        return [s for s, _ in self.present]


def load_cell(plan: Mapping[str, Any], cell: Mapping[str, Any], protocol: str,
              root: str | Path = ".") -> CellStats:
    root = Path(root)
    planned = [(seed_of(plan, r), r) for r in cell.get("runs", [])]
    stats = CellStats(cell=dict(cell), protocol=protocol, planned=planned)
    for seed, run in planned:
        metrics, why = read_json(root / run / "metrics.json")
        if metrics is None:
            stats.missing.append((seed, run, why or "missing"))
            continue
        if protocol not in (metrics.get("protocols") or {}):
            stats.missing.append((seed, run, f"protocol {protocol} not evaluated"))
            continue
        stats.present.append((seed, run))
        stats.per_run.append(run_values(metrics, protocol))
        stats.grayscale |= bool(metrics.get("grayscale_repeated_to_rgb"))
        note = metrics.get("protocol_notes")
        if note and note not in stats.notes:
            stats.notes.append(str(note))
    return stats


# ---------------------------------------------------------------------------------------------
# Footnotes
# ---------------------------------------------------------------------------------------------
class Notes:
    """Footnote categories with letters; each category lists the items it applies to."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._items: dict[str, list[str]] = {}

    def mark(self, header: str, item: str | None = None) -> str:
        """Register ``item`` under ``header``; returns the footnote letter."""
        if header not in self._items:
            self._order.append(header)
            self._items[header] = []
        if item and item not in self._items[header]:
            self._items[header].append(item)
        return self.letter(header)

    @staticmethod
    def sup(letters: Sequence[str]) -> str:
        return f"\\textsuperscript{{{','.join(letters)}}}" if letters else ""

    def letter(self, header: str) -> str:
        i = self._order.index(header)
        return "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else f"n{i}"

    def render(self) -> str:
        if not self._order:
            return ""
        parts = []
        for h in self._order:
            items = self._items[h]
            text = f"\\textsuperscript{{{self.letter(h)}}}\\,{h}"
            text += (": " + "; ".join(items)) if items else ""
            parts.append(text.rstrip(".") + ".")
        return "\\par\\smallskip\\footnotesize " + "\n\\par ".join(parts) + "\n"


NOTE_MISSING = "no metrics for any seed (shown as --)"
NOTE_PARTIAL = "mean $\\pm$ s.d.\\ over the available seeds only"
NOTE_SINGLE = "one seed available: mean only, no s.d."


def _runs_text(entries: Iterable[tuple[int | None, str, str]]) -> str:
    """Compact 'folder/seed{0,2} (why)' text for missing runs, grouped by folder and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for seed, run, why in entries:
        parent, _, leaf = run.rstrip("/").rpartition("/")
        key = (parent, why)
        groups.setdefault(key, []).append(leaf if seed is None else str(seed))
    out = []
    for (parent, why), leaves in groups.items():
        if all(s.isdigit() for s in leaves):
            leaf = "seed" + (leaves[0] if len(leaves) == 1 else "\\{" + ",".join(leaves) + "\\}")
        else:
            leaf = ",".join(leaves)
        out.append(f"{latex_path(parent + '/')}{leaf} ({latex_escape(why)})")
    return "; ".join(out)


def stat_cell(stats: CellStats | None, key: str, decimals: int, notes: Notes,
              who: str) -> str:
    """Formatted mean +- sd for one metric of one cell, with footnote marks."""
    if stats is None:
        return DASH
    vals = stats.values(key)
    n_planned = len(stats.planned)
    if not vals:
        if stats.missing and not stats.present:
            return DASH + notes.sup([notes.mark(NOTE_MISSING, f"{latex_escape(who)}: "
                                                + _runs_text(stats.missing))])
        return DASH + notes.sup([notes.mark("value absent from metrics.json",
                                            f"{latex_escape(who)} ({latex_escape(key)})")])
    if key == "bits" and len(set(vals)) == 1:  # a property of the configuration: no spread
        text = f"${fmt_num(vals[0], decimals)}$"
    else:
        text = fmt_stat(vals, decimals)
    letters = []
    if len(vals) < n_planned:
        miss = stats.missing or [(s, r, f"no {key}") for s, r in stats.planned
                                 if (s, r) not in stats.present]
        letters.append(notes.mark(NOTE_PARTIAL, f"{latex_escape(who)}: {len(vals)} of "
                                  f"{n_planned} (missing {_runs_text(miss)})"))
    if len(vals) == 1 and key != "bits":
        letters.append(notes.mark(NOTE_SINGLE))
    return text + notes.sup(letters)


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------
def _join_ints(xs: Iterable[Any]) -> str:
    return ", ".join(str(x) for x in xs)


def n_phrase(cells: Sequence[tuple[str, CellStats | None]]) -> str:
    """'N = 10000 test images (rFID: N = 5000)', or per-cell values when they differ."""
    def collect(key: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for who, st in cells:
            if st is None:
                continue
            for n in sorted(st.ns(key)):
                out.setdefault(n, []).append(who)
        return out

    def phrase(d: dict[int, list[str]]) -> str:
        if len(d) == 1:
            return f"$N = {next(iter(d))}$"
        return "; ".join(f"$N = {n}$ ({latex_escape(', '.join(dict.fromkeys(w)))})"
                         for n, w in sorted(d.items()))

    n_img, n_fid = collect("n"), collect("fid_n")
    if not n_img and not n_fid:
        return "N unknown (no metrics available)"
    text = (phrase(n_img) + " test images per run") if n_img else "N unknown"
    if n_fid and n_fid != n_img:
        text += f" (rFID over {phrase(n_fid)} images)"
    return text


def seeds_phrase(plan: Mapping[str, Any], cells: Sequence[tuple[str, CellStats | None]]) -> str:
    seeds: dict[int, None] = {}
    for _, st in cells:
        if st is not None:
            for s, _r in st.planned:
                if s is not None:
                    seeds[s] = None
    seeds_l = sorted(seeds) or [int(s) for s in plan.get("seeds", [])]
    k = len(seeds_l)
    return (f"mean $\\pm$ s.d.\\ (ddof = {DDOF}) over {k} seed{'s' if k != 1 else ''} "
            f"({_join_ints(seeds_l)}) of each run's mean over its test images")


def protocol_phrase(protocol: str, paper_values: Mapping[str, Any]) -> str:
    desc = ((paper_values.get("protocols_short") or {}).get(protocol)
            or (paper_values.get("protocols") or {}).get(protocol))
    head = f"Protocol \\texttt{{{latex_escape(protocol)}}}"
    return head + (f" ({latex_prose(desc)})" if desc else "")


# ---------------------------------------------------------------------------------------------
# Table bodies
# ---------------------------------------------------------------------------------------------
def _name(mapping_key: str, key: str, paper_values: Mapping[str, Any],
          default: Mapping[str, str] | None = None) -> str:
    names = paper_values.get(mapping_key) or {}
    return str(names.get(key) or (default or {}).get(key) or key)


def method_name(method: str, pv: Mapping[str, Any]) -> str:
    return _name("method_names", method, pv, DEFAULT_METHOD_NAMES)


def dataset_name(dataset: str, pv: Mapping[str, Any]) -> str:
    return _name("dataset_names", dataset, pv)


def paper_value(pv: Mapping[str, Any], table: str, dataset: str, method: str,
                metric: str) -> str | None:
    """The paper's value as printed (a string), or None."""
    try:
        v = pv[table]["datasets"][dataset]["values"][method][metric]
    except (KeyError, TypeError):
        return None
    if v is None:
        return None
    return str(v)


def _row(cells: Sequence[str]) -> str:
    return " & ".join(cells) + " \\\\"


@dataclass
class Column:
    key: tuple[str, ...]
    header: str                 # escaped
    group: str | None = None    # escaped; a second header level (Table 2 budgets)


def _tabular_compare(columns: Sequence[Column],
                     blocks: Sequence[tuple[str | None, str, Mapping[tuple, CellStats | None]]],
                     paper: Mapping[tuple, Mapping[str, str | None]] | None,
                     notes: Notes, pv: Mapping[str, Any], table_key: str) -> str:
    """Metric rows x method columns; ``blocks`` = (title, dataset, {column key: stats})."""
    compare = paper is not None
    ncol = len(columns) + (2 if compare else 1)
    spec = ("ll" if compare else "l") + "c" * len(columns)
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    lead = ["", ""] if compare else [""]
    groups = [c.group for c in columns]
    if any(g is not None for g in groups):
        hdr, rules, i = list(lead), [], 0
        while i < len(columns):
            j = i
            while j + 1 < len(columns) and groups[j + 1] == groups[i]:
                j += 1
            span = j - i + 1
            hdr.append(f"\\multicolumn{{{span}}}{{c}}{{{groups[i] or ''}}}" if span > 1
                       else (groups[i] or ""))
            first = len(lead) + i + 1
            rules.append(f"\\cmidrule(lr){{{first}-{first + span - 1}}}")
            i = j + 1
        lines.append(_row(hdr))
        lines.append(" ".join(rules))
    lines.append(_row((["Metric", ""] if compare else ["Metric"]) + [c.header for c in columns]))
    for b, (title, dataset, stats_by_col) in enumerate(blocks):
        lines.append("\\midrule")
        if title:
            lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\emph{{{title}}}}} \\\\")
        for mi, metric in enumerate(METRICS):
            header, dec, _ = METRIC_INFO[metric]
            if mi:
                lines.append("\\addlinespace")
            ours = []
            for c in columns:
                st = stats_by_col.get(c.key)
                who = _who(c, title)
                ours.append(stat_cell(st, metric, dec, notes, who) if st is not None else DASH)
            if not compare:
                lines.append(_row([header] + ours))
                continue
            lines.append(_row([header, "ours"] + ours))
            pap, diff = [], []
            for c in columns:
                st = stats_by_col.get(c.key)
                pval = (paper.get((dataset,) + c.key) or {}).get(metric) if paper else None
                pap.append(latex_escape(pval) if pval is not None else DASH)
                mean = st.mean(metric) if st is not None else None
                pf = _num(pval)
                diff.append(f"${fmt_num(mean - pf, dec, sign=True)}$"
                            if mean is not None and pf is not None else DASH)
            lines.append(_row(["", "paper"] + pap))
            lines.append(_row(["", "$\\Delta$"] + diff))
        lines.append("\\addlinespace")
        for key, (header, dec) in EXTRA_INFO.items():
            cells = []
            for c in columns:
                st = stats_by_col.get(c.key)
                cells.append(stat_cell(st, key, dec, notes, _who(c, title))
                             if st is not None else DASH)
            lines.append(_row([header, "ours"] + cells if compare else [header] + cells))
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


def _who(c: Column, title: str | None) -> str:
    """Unescaped-ish readable cell name for footnotes (already-escaped parts are kept)."""
    parts = [p for p in (title, c.group, c.header) if p]
    return " / ".join(_unescape(p) for p in parts)


def _unescape(s: str) -> str:
    return re.sub(r"\\([&%$#_{}])", r"\1", s)


def _table_env(name: str, caption: str, body: str, notes: Notes, sources: Sequence[str],
               protocol: str, size: str = "\\small") -> str:
    head = [f"% qgvae-bench table '{name}' (protocol {protocol}), written by qgvae.tables;",
            "% do not edit: re-render with `qgvae tables`. Needs \\usepackage{booktabs}.",
            "% Sources:"]
    head += [f"%   {s}" for s in sources]
    return "\n".join(head) + "\n" + "\n".join([
        "\\begin{table}[!htbp]",
        "\\centering",
        size,
        "\\setlength{\\tabcolsep}{4pt}",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:{name}}}",
        # centred even when wider than the text block (no overfull box, no extra package)
        "\\makebox[\\linewidth][c]{%",
        body + "}",
        notes.render().rstrip("\n"),
        "\\end{table}",
        ""]).replace("\n\n\\end{table}", "\n\\end{table}")


def _sources(stats: Iterable[tuple[str, CellStats | None]]) -> list[str]:
    out = []
    for who, st in stats:
        if st is None:
            continue
        for seed, run in st.planned:
            state = "present" if (seed, run) in st.present else "MISSING"
            out.append(f"{who}: {run}/metrics.json [{state}]")
    return out


def _notes_from_paper(pv: Mapping[str, Any], table: str) -> str:
    notes = (pv.get(table) or {}).get("notes") or []
    return " ".join(latex_prose(n) for n in notes)


def _paper_cite(pv: Mapping[str, Any]) -> str:
    src = pv.get("source") or {}
    return latex_escape(src.get("citation", "the paper"))


# ---------------------------------------------------------------------------------------------
# The three kinds of table
# ---------------------------------------------------------------------------------------------
def table1_tables(plan: Mapping[str, Any], pv: Mapping[str, Any], protocol: str,
                  root: Path) -> dict[str, str]:
    cells = (plan.get("tables") or {}).get("table1") or []
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    compare = protocol == pv.get("protocol")
    out: dict[str, str] = {}
    for ds in datasets:
        ds_cells = [c for c in cells if c["dataset"] == ds]
        notes = Notes()
        columns, stats_by_col, named = [], {}, []
        paper: dict[tuple, dict[str, str | None]] = {}
        for c in ds_cells:
            key = (c["method"],)
            columns.append(Column(key, latex_escape(method_name(c["method"], pv))))
            st = load_cell(plan, c, protocol, root)
            stats_by_col[key] = st
            named.append((method_name(c["method"], pv), st))
            paper[(ds, c["method"])] = {m: paper_value(pv, "table1", ds, c["method"], m)
                                        for m in METRICS}
        body = _tabular_compare(columns, [(None, ds, stats_by_col)], paper if compare else None,
                                notes, pv, "table1")
        dsn = latex_escape(dataset_name(ds, pv))
        cap = [f"Reconstruction on {dsn} (test split). {protocol_phrase(protocol, pv)}.",
               f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}."]
        if compare:
            lines = (((pv.get("table1") or {}).get("datasets") or {}).get(ds) or {}).get(
                "source_lines")
            cap.append(f"Paper: Table 1 of {_paper_cite(pv)}"
                       + (f" (text lines {latex_escape(lines)})" if lines else "")
                       + ", measured with the same protocol; "
                       "$\\Delta$ = ours $-$ paper (higher is better for SSIM and PSNR, "
                       "lower for LPIPS and rFID); -- = no value.")
            cap.append(_notes_from_paper(pv, "table1"))
        else:
            cap.append(f"The paper reports no numbers under this protocol (it used "
                       f"\\texttt{{{latex_escape(pv.get('protocol', 'vqwae'))}}}).")
        if any(st.grayscale for _, st in named):
            cap.append("Grayscale images are repeated to RGB for LPIPS and rFID.")
        cap.append("Code usage: mean over token positions of the fraction of the codebook "
                   "used on the test set.")
        name = f"table1_{ds}"
        src = _sources(named)
        if compare:
            where = f"lines {lines}" if lines else "(no table for this dataset)"
            src.append(f"paper: {(pv.get('source') or {}).get('file', 'paper_values.yaml')} "
                       f"{where} via config/paper_values.yaml")
        out[name] = _table_env(name, " ".join(x for x in cap if x), body, notes, src, protocol)
    return out


def table2_table(plan: Mapping[str, Any], pv: Mapping[str, Any], protocol: str,
                 root: Path) -> dict[str, str]:
    cells = (plan.get("tables") or {}).get("table2") or []
    if not cells:
        return {}
    compare = protocol == pv.get("protocol")
    labels = list(dict.fromkeys(c["label"] for c in cells))
    multi_budget = len(labels) > 1
    col_keys = list(dict.fromkeys((c["label"], c["method"]) for c in cells))
    columns = [Column(k, latex_escape(method_name(k[1], pv)),
                      latex_escape(k[0]) if multi_budget else None) for k in col_keys]
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    notes = Notes()
    blocks, named, paper = [], [], {}
    for ds in datasets:
        by_col: dict[tuple, CellStats | None] = {}
        for c in cells:
            if c["dataset"] != ds:
                continue
            st = load_cell(plan, c, protocol, root)
            by_col[(c["label"], c["method"])] = st
            named.append((f"{dataset_name(ds, pv)} {method_name(c['method'], pv)} {c['label']}",
                          st))
        for k in col_keys:
            paper[(ds,) + k] = {m: paper_value(pv, "table2", ds, k[1], m) for m in METRICS}
        blocks.append((latex_escape(dataset_name(ds, pv)), ds, by_col))
    body = _tabular_compare(columns, blocks, paper if compare else None, notes, pv, "table2")
    cap = [f"Comparison with DQ-VAE (Table 2). {protocol_phrase(protocol, pv)}."]
    if not multi_budget:
        cap.append(f"Token budget: {latex_escape(labels[0])}.")
    cap.append(f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.")
    if compare:
        lines = (pv.get("table2") or {}).get("source_lines")
        cap.append(f"Paper: Table 2 of {_paper_cite(pv)}"
                   + (f" (text lines {latex_escape(lines)})" if lines else "")
                   + "; $\\Delta$ = ours $-$ paper; -- = no value.")
        cap.append(_notes_from_paper(pv, "table2"))
    else:
        cap.append(f"The paper reports no numbers under this protocol (it used "
                   f"\\texttt{{{latex_escape(pv.get('protocol', 'vqwae'))}}}).")
    return {"table2": _table_env("table2", " ".join(x for x in cap if x), body, notes,
                                 _sources(named), protocol)}


def ablation_tables(plan: Mapping[str, Any], pv: Mapping[str, Any], protocol: str,
                    root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, cells in (plan.get("tables") or {}).items():
        if not name.startswith("ablation_") or not cells:
            continue
        axis = name[len("ablation_"):]
        methods = list(dict.fromkeys(c["method"] for c in cells))
        datasets = list(dict.fromkeys(c["dataset"] for c in cells))
        multi_m, multi_d = len(methods) > 1, len(datasets) > 1
        notes = Notes()
        lead = ["Value"] + (["Method"] if multi_m else []) + (["Dataset"] if multi_d else [])
        cols = [METRIC_INFO[m][0] for m in METRICS] + [EXTRA_SHORT[k] for k in EXTRA_INFO]
        lines = [f"\\begin{{tabular}}{{{'l' * len(lead)}{'c' * len(cols)}}}", "\\toprule",
                 _row(lead + cols), "\\midrule"]
        named = []
        for c in cells:
            st = load_cell(plan, c, protocol, root)
            who = " ".join([str(c["label"])] + ([method_name(c["method"], pv)] if multi_m
                                                else []) + ([c["dataset"]] if multi_d else []))
            named.append((who, st))
            row = [latex_escape(c["label"])]
            if multi_m:
                row.append(latex_escape(method_name(c["method"], pv)))
            if multi_d:
                row.append(latex_escape(dataset_name(c["dataset"], pv)))
            for m in METRICS:
                row.append(stat_cell(st, m, METRIC_INFO[m][1], notes, who))
            for key, (_, dec) in EXTRA_INFO.items():
                row.append(stat_cell(st, key, dec, notes, who))
            lines.append(_row(row))
        lines += ["\\bottomrule", "\\end{tabular}"]
        dsn = ", ".join(latex_escape(dataset_name(d, pv)) for d in datasets)
        who_m = ", ".join(latex_escape(method_name(m, pv)) for m in methods)
        cap = [f"Ablation of \\emph{{{latex_escape(axis)}}} ({who_m} on {dsn}; each row "
               f"changes only this setting from the defaults).",
               f"{protocol_phrase(protocol, pv)}.",
               f"Ours: {seeds_phrase(plan, named)}; {n_phrase(named)}.",
               "Bits: bits per image of the code; usage: mean over token positions of the "
               "fraction of the codebook used on the test set (\\%)."]
        src = _sources(named)
        src += [f"value {c['label']} / {c['method']}: overrides "
                f"{json.dumps(c.get('overrides') or {}, sort_keys=True)}" for c in cells]
        out[name] = _table_env(name, " ".join(cap), "\n".join(lines), notes, src, protocol,
                               size="\\footnotesize")
    return out


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
def table_names(plan: Mapping[str, Any]) -> list[str]:
    """Per-table file stems for one protocol, in rendering order."""
    tables = plan.get("tables") or {}
    names = [f"table1_{d}" for d in dict.fromkeys(c["dataset"] for c in tables.get("table1", []))]
    if tables.get("table2"):
        names.append("table2")
    names += [n for n in tables if n.startswith("ablation_") and tables[n]]
    return names


def expected_outputs(plan: Mapping[str, Any], out_dir: str | Path,
                     protocol: str = "vqwae") -> list[Path]:
    """Every per-table file ``render_tables`` writes (for workflow output declarations)."""
    out_dir = Path(out_dir)
    files = []
    for p in _protocol_order(protocol):
        suffix = "" if p == protocol else f"_{p}"
        files += [out_dir / f"{n}{suffix}.tex" for n in table_names(plan)]
    return files


def _protocol_order(protocol: str) -> list[str]:
    return [protocol] + [p for p in PROTOCOLS if p != protocol]


def render_tables(plan: Mapping[str, Any] | str | Path,
                  paper_values: Mapping[str, Any] | str | Path | None,
                  out_tex: str | Path, out_dir: str | Path, protocol: str = "vqwae",
                  root: str | Path = ".") -> list[Path]:
    """Write every table (per-table files + the combined ``out_tex``); returns the paths.

    ``root`` is the folder that the plan's run paths are relative to (the repository root).
    """
    if not isinstance(plan, Mapping):
        plan = json.loads(Path(plan).read_text())
    if paper_values is None or isinstance(paper_values, Mapping):
        pv = dict(paper_values or {})
    else:
        pv = load_paper_values(paper_values)
    root, out_dir, out_tex = Path(root), Path(out_dir), Path(out_tex)
    written: list[Path] = []
    combined = ["% qgvae-bench: every table of the benchmark, written by qgvae.tables.",
                "% Needs: \\usepackage{booktabs} (nothing else). Numbers come only from the",
                "% run folders' metrics.json and config/paper_values.yaml (see each table's",
                "% source comments). Main protocol first, then the other protocols;",
                f"% s.d. over seeds uses ddof = {DDOF}.", ""]
    for p in _protocol_order(protocol):
        suffix = "" if p == protocol else f"_{p}"
        rendered: dict[str, str] = {}
        rendered.update(table1_tables(plan, pv, p, root))
        rendered.update(table2_table(plan, pv, p, root))
        rendered.update(ablation_tables(plan, pv, p, root))
        combined.append(f"% ===== protocol {p}" + (" (main)" if p == protocol else "")
                        + " =====")
        for i, name in enumerate(table_names(plan)):
            text = rendered[name]
            if suffix:
                text = text.replace(f"\\label{{tab:{name}}}", f"\\label{{tab:{name}{suffix}}}")
            path = out_dir / f"{name}{suffix}.tex"
            write_text(path, text)
            written.append(path)
            combined += [f"% ---- {path.name}", text]
            if i % 4 == 3:
                combined.append("\\clearpage")
        combined.append("\\clearpage\n")
    write_text(out_tex, "\n".join(combined))
    written.append(out_tex)
    return written


def _run(args: argparse.Namespace) -> int:
    plan_path, paper_path = Path(args.plan), Path(args.paper)
    for what, p in (("plan", plan_path), ("paper values", paper_path)):
        if not p.is_file():
            print(f"qgvae tables: {what} file not found: {p}")
            return 2
    written = render_tables(plan_path, paper_path, args.out, args.outdir,
                            protocol=args.protocol, root=args.root)
    print(f"qgvae tables: wrote {len(written) - 1} table files under {args.outdir} and "
          f"{args.out}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", default="results/plan.json", help="plan.json (build_plan output)")
    p.add_argument("--paper", default="config/paper_values.yaml", help="paper values (YAML)")
    p.add_argument("--out", default="reports/tables.tex", help="combined .tex of all tables")
    p.add_argument("--outdir", default="reports/tables", help="folder for one file per table")
    p.add_argument("--protocol", default="vqwae", choices=PROTOCOLS,
                   help="main protocol (compared with the paper when it is the paper's)")
    p.add_argument("--root", default=".", help="folder the plan's run paths are relative to")


def register_cli(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tables", help="LaTeX tables from results/ (no recomputation)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=_run)
    return p
