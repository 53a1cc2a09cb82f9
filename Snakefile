# qgvae-bench: reproduce the Quantised Global Autoencoder (QG-VAE, arXiv 2407.11913) and its
# baselines: data, training, evaluation, ablations, LaTeX tables, figures and a report.
#
#   snakemake --cores 8 all                                 # the paper (config/config.yaml)
#   snakemake --cores 8 ablation_heads                      # one ablation: runs, table, figure
#   snakemake --cores 2 all --configfile config/quick.yaml  # toy scale, CPU, no internet
#   snakemake --report reports/report.html                  # HTML report of what exists
#
# Targets: all, table1, table2, ablations, ablation_<axis> for every configured axis, modern
# (QG-VAE against modern quantisers: its runs, tables and figures), generation (the paper's
# appendix H, when the config has a `generation` section).
# Which runs exist and where they live is decided by qgvae.experiments.build_plan(config)
# (workflow/rules/common.smk); rules only call the `qgvae` command line.
# Local defaults (one GPU job at a time, rerun triggers without `code`, ...) are in
# workflow/profiles/default/config.yaml; Snakemake 9 looks for profiles/default beside the
# Snakefile, and the top-level `profiles` links to workflow/profiles, so it is used by itself.
# Put targets before --configfile (or write --configfile=FILE): --configfile takes several
# files and would read a target after it as one more config file.

from snakemake.utils import min_version

min_version("9.0")


# A config file given with --configfile replaces config/config.yaml instead of being merged into
# it (Snakemake's default deep merge would add the paper's table cells to the quick config's).
# `--config key=value` still overrides single keys of either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/generation.smk"


rule all:
    default_target: True
    input:
        all_files() + generation_files(),


rule table1:
    input:
        target_files("table1"),


rule table2:
    input:
        target_files("table2"),


# QG-VAE against modern quantisers at equal bits (config `modern`): the runs of the tables
# `modern` and `modern_rates`, their tables (reports/targets/modern*/) and figures
# (recon_grid_modern_<dataset>, rate_distortion_modern).
rule modern:
    input:
        target_files("modern") + target_files("modern_rates"),


# The generation study (config `generation`): priors, samples, gFID, its figures and table.
rule generation:
    input:
        generation_files(),


rule ablations:
    input:
        [f for axis in ABLATION_AXES for f in target_files(f"ablation_{axis}")],


# One target per ablation axis of the config: ablation_codebooks, ablation_heads, ...
for _axis in ABLATION_AXES:

    rule:
        name:
            f"ablation_{_axis}"
        input:
            target_files(f"ablation_{_axis}"),
