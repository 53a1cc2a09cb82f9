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
    log:
        f"{RESULTS}/logs/report.log",
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        figdir=lambda wildcards, input: os.path.dirname(input.figures[0]),
        pdf=lambda wildcards, output: os.path.splitext(output.tex)[0] + ".pdf",
    shell:
        "qgvae report --plan {input.plan:q} --tables {input.tables:q} --figures {params.figdir:q}"
        " --paper {input.paper:q} --out {params.pdf:q} > {log:q} 2>&1"
