# The plan on disk, and the LaTeX tables.
#
# results/plan.json is the whole plan; results/plans/<table>.json is the plan of one table
# (its cells and runs only), so that one table, or one ablation, is built from its own runs.
# Both are written by `qgvae plan` and rewritten exactly when their content changes (the params
# rerun trigger sees the plan's digest).


rule plan:
    output:
        plan=plan_file(),
    log:
        f"{RESULTS}/logs/plan.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/plan.tsv"
    localrule: True
    conda:
        ENV
    params:
        config=config_json(),
        digest=plan_digest(),
    shell:
        "qgvae plan --config-json {params.config:q} --out {output.plan:q} > {log:q} 2>&1"


# A table's plan is cut out of the whole plan (cheap: no torch, no model checks); the whole
# plan is ancient() here, so a config change re-cuts only the tables whose digest changed.
rule table_plan:
    input:
        plan=ancient(plan_file()),
    output:
        plan=plan_file("{table}"),
    log:
        f"{RESULTS}/logs/plans/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/plans/{{table}}.tsv"
    localrule: True
    conda:
        ENV
    params:
        digest=lambda wildcards: plan_digest(wildcards.table),
    shell:
        "qgvae plan --from {input.plan:q} --table {wildcards.table:q}"
        " --out {output.plan:q} > {log:q} 2>&1"


# The results as one long table (README: summary.csv), one row per run x protocol x metric: every
# table, figure, page and the report reads its numbers from it. summary.csv holds every run of
# the plan; summaries/<table>.csv the runs of one table, so that one target needs only its runs.
rule collect:
    input:
        plan=plan_file(),
        metrics=run_files(runs_for(PLAN), "metrics.json") + floor_metrics(runs_for(PLAN)),
    output:
        summary=report(
            summary_file(),
            caption="../report/summary.rst",
            category="Results",
            labels={"table": "summary.csv"},
        ),
        notes=f"{RESULTS}/summary_notes.json",  # the protocol notes, once (summary.csv: digests)
    log:
        f"{RESULTS}/logs/collect.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/collect.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    shell:
        "qgvae collect --plan {input.plan:q} --out {output.summary:q} > {log:q} 2>&1"


rule table_collect:
    input:
        plan=plan_file("{table}"),
        metrics=table_metrics,
    output:
        summary=summary_file("{table}"),
        notes=f"{RESULTS}/summaries/{{table}}_notes.json",
    log:
        f"{RESULTS}/logs/collect/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/collect/{{table}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    shell:
        "qgvae collect --plan {input.plan:q} --out {output.summary:q} > {log:q} 2>&1"


# The tables of one target (table1, table2, ablation_<axis>), from that target's runs only.
rule table:
    input:
        plan=plan_file("{table}"),
        paper=PAPER_VALUES,
        summary=summary_file("{table}"),
        differences=lambda wildcards: (
            table_differences_file(wildcards.table) if wildcards.table in PAIRED_TABLES else []
        ),
    output:
        tex=report(
            f"{REPORTS}/targets/{{table}}/tables.tex",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{table}",
            labels={"table": "{table}"},
        ),
    log:
        f"{RESULTS}/logs/tables/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/tables/{{table}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        outdir=lambda wildcards, output: os.path.join(os.path.dirname(output.tex), "tables"),
        differences=lambda wildcards, input: shell_words(
            ["--differences", input.differences] if input.differences else []
        ),
    shell:
        # params.differences: already shell-quoted (shell_words), empty but for PAIRED_TABLES
        "qgvae tables --plan {input.plan:q} --paper {input.paper:q} --summary {input.summary:q}"
        " --out {output.tex:q} --outdir {params.outdir:q} {params.differences} > {log:q} 2>&1"


# Every table in one document: reports/tables.tex (fragments in reports/tables/).
rule tables:
    input:
        plan=plan_file(),
        paper=PAPER_VALUES,
        differences=DIFFERENCES,
        summary=summary_file(),
        generation=generation_metrics(),  # the generation table's results (if configured)
    output:
        tex=report(
            f"{REPORTS}/tables.tex",
            caption="../report/tables.rst",
            category="Tables",
            subcategory="all tables",
            labels={"table": "all"},
        ),
    log:
        f"{RESULTS}/logs/tables/all.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/tables/all.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        outdir=lambda wildcards, output: os.path.splitext(output.tex)[0],
    shell:
        "qgvae tables --plan {input.plan:q} --paper {input.paper:q} --summary {input.summary:q}"
        " --out {output.tex:q} --outdir {params.outdir:q} --differences {input.differences:q}"
        " > {log:q} 2>&1"


# Paired bootstrap intervals of every Table-1 comparison and of each rate-distortion cell,
# from the runs' per-image metrics and stored Inception features (no recomputation).
rule differences:
    input:
        plan=plan_file(),
        metrics=differences_inputs(),
    output:
        diffs=f"{REPORTS}/tables/paired_differences.csv",
        intervals=f"{REPORTS}/tables/method_intervals.csv",
    log:
        f"{RESULTS}/logs/tables/differences.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/differences.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.diffs),
        flags=shell_words(
            [
                "--resamples",
                BOOTSTRAP["resamples"],
                "--rfid-resamples",
                BOOTSTRAP["rfid_resamples"],
                "--seed",
                BOOTSTRAP["seed"],
            ]
        ),
    shell:
        # params.flags: already shell-quoted word by word (shell_words in common.smk)
        "qgvae differences --plan {input.plan:q} --outdir {params.outdir:q} {params.flags}"
        " > {log:q} 2>&1"


# The paired intervals of one target's own runs (Table 1, the modern table): its table's marks
# need no other table's runs. The same numbers as in the whole plan's file (differences.py).
rule table_differences:
    input:
        plan=plan_file("{table}"),
        metrics=table_metrics,
    output:
        diffs=table_differences_file("{table}"),
        intervals=f"{REPORTS}/targets/{{table}}/method_intervals.csv",
    log:
        f"{RESULTS}/logs/tables/differences_{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/differences_{{table}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.diffs),
        flags=shell_words(
            [
                "--resamples",
                BOOTSTRAP["resamples"],
                "--rfid-resamples",
                BOOTSTRAP["rfid_resamples"],
                "--seed",
                BOOTSTRAP["seed"],
            ]
        ),
    shell:
        "qgvae differences --plan {input.plan:q} --outdir {params.outdir:q} {params.flags}"
        " > {log:q} 2>&1"
