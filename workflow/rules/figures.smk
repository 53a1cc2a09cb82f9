# Figures: `qgvae figures --only NAME` draws reports/figures/NAME.pdf and NAME.png.
#   recon_grid_<dataset>  Table 1's methods side by side on test images (Table 1's runs)
#   ablation_<axis>       one ablation axis (that ablation's runs)
#   progressive, token_influence, code_usage, training_curves, rate_distortion (every run)
# Each figure gets the plan of exactly the runs it reads, and those runs' outputs as input.
# Beside each figure, NAME.json holds its caption and sources (read by `qgvae report`).

FIGURE_CMD = (
    "qgvae figures --plan {input.plan:q} --paper {input.paper:q} --outdir {params.outdir:q}"
    " --only {params.name} > {log:q} 2>&1"
)


rule recon_grid:
    input:
        plan=plan_file("table1"),
        paper=PAPER_VALUES,
        runs=recon_grid_inputs,
    output:
        pdf=report(
            f"{REPORTS}/figures/recon_grid_{{dataset}}.pdf",
            caption="../report/recon_grid.rst",
            category="Figures",
            subcategory="Table 1",
            labels={"figure": "recon_grid_{dataset}", "format": "PDF"},
        ),
        png=report(
            f"{REPORTS}/figures/recon_grid_{{dataset}}.png",
            caption="../report/recon_grid.rst",
            category="Figures",
            subcategory="Table 1",
            labels={"figure": "recon_grid_{dataset}", "format": "PNG"},
        ),
        meta=f"{REPORTS}/figures/recon_grid_{{dataset}}.json",
    params:
        name="recon_grid_{dataset}",
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    log:
        f"{RESULTS}/logs/figures/recon_grid_{{dataset}}.log",
    localrule: True
    threads: RESOURCES["summary"]["threads"]
    resources:
        mem_mb=RESOURCES["summary"]["mem_mb"],
        runtime=RESOURCES["summary"]["runtime"],
    conda:
        ENV
    shell:
        FIGURE_CMD


rule ablation_figure:
    input:
        plan=plan_file("ablation_{axis}"),
        paper=PAPER_VALUES,
        runs=ablation_figure_inputs,
    output:
        pdf=report(
            f"{REPORTS}/figures/ablation_{{axis}}.pdf",
            caption="../report/ablation_figure.rst",
            category="Figures",
            subcategory="Ablations",
            labels={"figure": "ablation_{axis}", "format": "PDF"},
        ),
        png=report(
            f"{REPORTS}/figures/ablation_{{axis}}.png",
            caption="../report/ablation_figure.rst",
            category="Figures",
            subcategory="Ablations",
            labels={"figure": "ablation_{axis}", "format": "PNG"},
        ),
        meta=f"{REPORTS}/figures/ablation_{{axis}}.json",
    params:
        name="ablation_{axis}",
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    log:
        f"{RESULTS}/logs/figures/ablation_{{axis}}.log",
    localrule: True
    threads: RESOURCES["summary"]["threads"]
    resources:
        mem_mb=RESOURCES["summary"]["mem_mb"],
        runtime=RESOURCES["summary"]["runtime"],
    conda:
        ENV
    shell:
        FIGURE_CMD


rule summary_figure:
    input:
        plan=plan_file(),
        paper=PAPER_VALUES,
        runs=run_files(runs_for(PLAN), *RUN_OUTPUTS),
    output:
        pdf=report(
            f"{REPORTS}/figures/{{figure}}.pdf",
            caption="../report/summary_figure.rst",
            category="Figures",
            subcategory="Analysis",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            f"{REPORTS}/figures/{{figure}}.png",
            caption="../report/summary_figure.rst",
            category="Figures",
            subcategory="Analysis",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
        meta=f"{REPORTS}/figures/{{figure}}.json",
    params:
        name="{figure}",
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    localrule: True
    threads: RESOURCES["summary"]["threads"]
    resources:
        mem_mb=RESOURCES["summary"]["mem_mb"],
        runtime=RESOURCES["summary"]["runtime"],
    conda:
        ENV
    shell:
        FIGURE_CMD
