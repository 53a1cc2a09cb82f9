# The plan on disk, and the LaTeX tables.
#
# results/plan.json is the whole plan; results/plans/<table>.json is the plan of one table
# (its cells and runs only), so that one table, or one ablation, is built from its own runs.
# Both are rewritten exactly when their content changes (params rerun trigger).


rule plan:
    output:
        plan=plan_file(),
    params:
        plan=json.dumps(PLAN, indent=1),
    log:
        f"{RESULTS}/logs/plan.log",
    localrule: True
    run:
        write_plan(output.plan, params.plan, log[0])


rule table_plan:
    output:
        plan=plan_file("{table}"),
    params:
        plan=subplan_json,
    log:
        f"{RESULTS}/logs/plans/{{table}}.log",
    localrule: True
    run:
        write_plan(output.plan, params.plan, log[0])


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
    params:
        outdir=lambda wildcards, output: os.path.join(os.path.dirname(output.tex), "tables"),
    log:
        f"{RESULTS}/logs/tables/{{table}}.log",
    localrule: True
    threads: RESOURCES["summary"]["threads"]
    resources:
        mem_mb=RESOURCES["summary"]["mem_mb"],
        runtime=RESOURCES["summary"]["runtime"],
    conda:
        ENV
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
    params:
        outdir=lambda wildcards, output: os.path.splitext(output.tex)[0],
    log:
        f"{RESULTS}/logs/tables/all.log",
    localrule: True
    threads: RESOURCES["summary"]["threads"]
    resources:
        mem_mb=RESOURCES["summary"]["mem_mb"],
        runtime=RESOURCES["summary"]["runtime"],
    conda:
        ENV
    shell:
        "qgvae tables --plan {input.plan:q} --paper {input.paper:q} --out {output.tex:q}"
        " --outdir {params.outdir:q} > {log:q} 2>&1"
