# The report: reports/report.tex from the plan, the tables and the figures; `qgvae report`
# also builds reports/report.pdf when a TeX installation exists (and says so when it does not,
# which is why the PDF is not a declared output).


rule report_document:
    input:
        plan=plan_file(),
        tables=f"{REPORTS}/tables.tex",
        figures=[f for name in FIGURES for f in figure_files(name)],
        paper=PAPER_VALUES,
    output:
        tex=f"{REPORTS}/report.tex",
    params:
        figdir=lambda wildcards, input: os.path.dirname(input.figures[0]),
        pdf=lambda wildcards, output: os.path.splitext(output.tex)[0] + ".pdf",
    log:
        f"{RESULTS}/logs/report.log",
    localrule: True
    threads: RESOURCES["summary"]["threads"]
    resources:
        mem_mb=RESOURCES["summary"]["mem_mb"],
        runtime=RESOURCES["summary"]["runtime"],
    conda:
        ENV
    shell:
        "qgvae report --plan {input.plan:q} --tables {input.tables:q} --figures {params.figdir:q}"
        " --paper {input.paper:q} --out {params.pdf:q} > {log:q} 2>&1"
