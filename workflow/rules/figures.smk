# Figures: `qgvae figures --only NAME` draws reports/figures/NAME.pdf and NAME.png.
#   recon_grid_<dataset>  Table 1's methods side by side on test images (Table 1's runs)
#   ablation_<axis>       one ablation axis (that ablation's runs)
#   progressive, token_influence, code_usage, training_curves, rate_distortion (every run)
#   recon_grid_modern_<dataset>, rate_distortion_modern   the modern tables' (their runs)
# Each figure gets the plan and the summary table of exactly the runs it reads, and those runs'
# outputs (images, logs) as input. Beside each figure, NAME.json holds its caption and sources
# (read by `qgvae report`).

FIGURE_CMD = (
    "qgvae figures --plan {input.plan:q} --paper {input.paper:q} --outdir {params.outdir:q}"
    " --only {params.name:q} {params.summary} {params.intervals} > {log:q} 2>&1"
)


rule recon_grid:
    input:
        plan=plan_file("table1"),
        paper=PAPER_VALUES,
        summary=summary_file("table1"),
        runs=recon_grid_inputs,
    output:
        **figure_outputs("recon_grid_{dataset}", "recon_grid.rst", "Table 1"),
    log:
        f"{RESULTS}/logs/figures/recon_grid_{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/figures/recon_grid_{{dataset}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        name="recon_grid_{dataset}",
        intervals="",
        summary=summary_flag,
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    shell:
        FIGURE_CMD


rule ablation_figure:
    input:
        plan=plan_file("ablation_{axis}"),
        paper=PAPER_VALUES,
        summary=summary_file("ablation_{axis}"),
        runs=ablation_figure_inputs,
    output:
        **figure_outputs("ablation_{axis}", "ablation_figure.rst", "Ablations"),
    log:
        f"{RESULTS}/logs/figures/ablation_{{axis}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/figures/ablation_{{axis}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        name="ablation_{axis}",
        intervals="",
        summary=summary_flag,
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    shell:
        FIGURE_CMD


rule summary_figure:
    input:
        plan=plan_file(),
        paper=PAPER_VALUES,
        summary=summary_file(),
        runs=run_files(runs_for(PLAN), *RUN_OUTPUTS) + floor_metrics(runs_for(PLAN)),
        intervals=lambda wildcards: INTERVALS if wildcards.figure == "rate_distortion" else [],
    output:
        **figure_outputs("{figure}", "summary_figure.rst", "Analysis"),
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/figures/{{figure}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        name="{figure}",
        summary=summary_flag,
        intervals=lambda wildcards, input: shell_words(
            ["--intervals", input.intervals] if input.intervals else []
        ),
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    shell:
        FIGURE_CMD


rule recon_grid_modern:
    input:
        plan=plan_file("modern"),
        paper=PAPER_VALUES,
        summary=summary_file("modern"),
        runs=lambda wildcards: recon_grid_inputs(wildcards, "modern"),
    output:
        **figure_outputs("recon_grid_modern_{dataset}", "recon_grid.rst", "Modern quantisers"),
    log:
        f"{RESULTS}/logs/figures/recon_grid_modern_{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/figures/recon_grid_modern_{{dataset}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        name="recon_grid_modern_{dataset}",
        intervals="",
        summary=summary_flag,
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    shell:
        FIGURE_CMD


rule rate_distortion_modern:
    input:
        plan=plan_file("modern_rates"),
        paper=PAPER_VALUES,
        summary=summary_file("modern_rates"),
        runs=lambda wildcards: table_outputs(wildcards, "modern_rates"),
        intervals=f"{REPORTS}/targets/modern_rates/method_intervals.csv",
    output:
        **figure_outputs("rate_distortion_modern", "summary_figure.rst", "Modern quantisers"),
    log:
        f"{RESULTS}/logs/figures/rate_distortion_modern.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/figures/rate_distortion_modern.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        name="rate_distortion_modern",
        summary=summary_flag,
        intervals=lambda wildcards, input: shell_words(["--intervals", input.intervals]),
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    shell:
        FIGURE_CMD
