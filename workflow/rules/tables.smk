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
    localrule: True
    conda:
        ENV
    params:
        config=config_json(),
        digest=plan_digest(),
    shell:
        "qgvae plan --config-json {params.config:q} --out {output.plan:q} > {log:q} 2>&1"


rule table_plan:
    output:
        plan=plan_file("{table}"),
    log:
        f"{RESULTS}/logs/plans/{{table}}.log",
    localrule: True
    conda:
        ENV
    params:
        config=config_json(),
        digest=lambda wildcards: plan_digest(wildcards.table),
    shell:
        "qgvae plan --config-json {params.config:q} --table {wildcards.table:q}"
        " --out {output.plan:q} > {log:q} 2>&1"


# The tables of one target (table1, table2, ablation_<axis>), from that target's runs only.
rule table:
    input:
        plan=plan_file("{table}"),
        paper=PAPER_VALUES,
        metrics=table_metrics,
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
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        outdir=lambda wildcards, output: os.path.join(os.path.dirname(output.tex), "tables"),
    shell:
        "qgvae tables --plan {input.plan:q} --paper {input.paper:q} --out {output.tex:q}"
        " --outdir {params.outdir:q} > {log:q} 2>&1"


# Every table in one document: reports/tables.tex (fragments in reports/tables/).
rule tables:
    input:
        plan=plan_file(),
        paper=PAPER_VALUES,
        metrics=run_files(runs_for(PLAN), "metrics.json"),
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
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        outdir=lambda wildcards, output: os.path.splitext(output.tex)[0],
    shell:
        "qgvae tables --plan {input.plan:q} --paper {input.paper:q} --out {output.tex:q}"
        " --outdir {params.outdir:q} > {log:q} 2>&1"
