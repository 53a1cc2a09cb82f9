#!/usr/bin/env bash
# The quick workflow end to end (README's first command) on a clean results/ and reports/,
# then its tables compiled with pdflatex in a minimal document.
set -euo pipefail
cd "$(dirname "$0")/.."
find results reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
rm -rf .snakemake/locks
start=$(date +%s)
timeout 1500 snakemake --cores 2 all --configfile config/quick.yaml
echo "quick workflow: $(( $(date +%s) - start )) s"
qgvae timing results/quick
test -s reports/tables.tex
# what the run produced: every method and ablation run at least 3 dB above the mean image and
# input-dependent, the floor and the scale in the tables (tests/test_quick_run.py)
pytest -m quickrun tests/test_quick_run.py -p no:cacheprovider
if command -v pdflatex >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  cat > "$tmp/doc.tex" <<TEX
\documentclass{article}
\usepackage{booktabs}
\usepackage{graphicx}
\begin{document}
\input{$PWD/reports/tables.tex}
\end{document}
TEX
  (cd "$tmp" && pdflatex -interaction=nonstopmode -halt-on-error doc.tex >/dev/null) \
    || { echo "reports/tables.tex does not compile"; tail -30 "$tmp/doc.log"; exit 1; }
  echo "reports/tables.tex compiles"
else
  echo "pdflatex not installed: tables.tex compile check skipped"
fi
