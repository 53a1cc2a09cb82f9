# The report: reports/report.tex from the plan, the tables and the figures; `qgvae report`
# also builds reports/report.pdf when a TeX installation exists (and says so when it does not,
# which is why the PDF is not a declared output).


rule report_document:
    input:
        plan=plan_file(),
        summary=summary_file(),
        tables=f"{REPORTS}/tables.tex",
        figures=[f for name in FIGURES for f in figure_files(name)],
        paper=PAPER_VALUES,
    output:
        tex=f"{REPORTS}/report.tex",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/report.tsv"
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
        "qgvae report --plan {input.plan:q} --summary {input.summary:q} --tables {input.tables:q}"
        " --figures {params.figdir:q} --paper {input.paper:q} --out {params.pdf:q} > {log:q} 2>&1"


# The results as one Markdown page (config `markdown`, e.g. docs/results/mnist-cpu.md): after
# the report, so that the stage times it prints cover every other job.
if MARKDOWN:
    # the hand-written reading (optional) is an input: editing it re-renders the page
    READING = MARKDOWN.get("reading")
    READING = READING if READING and os.path.isfile(READING) else None

    rule markdown:
        input:
            reading=[READING] if READING else [],
            plan=plan_file(),
            summary=summary_file(),
            report=f"{REPORTS}/report.tex",
            differences=DIFFERENCES,
            figures=[f for name in FIGURES for f in figure_files(name)],
            paper=PAPER_VALUES,
        output:
            MARKDOWN["out"],
        log:
            f"{RESULTS}/logs/markdown.log",
        benchmark:
            f"{RESULTS}/benchmarks/render/markdown.tsv"
        localrule: True
        conda:
            ENV
        threads: RESOURCES["summary"]["threads"]
        resources:
            **job_resources("summary"),
        params:
            figdir=lambda wildcards, input: os.path.dirname(input.figures[0]),
            title=MARKDOWN["title"],
            command=MARKDOWN["command"],
            reading=["--reading", READING] if READING else [],
            results=RESULTS,
        shell:
            "qgvae markdown --plan {input.plan:q} --paper {input.paper:q} --out {output:q}"
            " --summary {input.summary:q}"
            " --title {params.title:q} --command {params.command:q} --results {params.results:q}"
            " --figures {params.figdir:q} --differences {input.differences:q}"
            " {params.reading:q} > {log:q} 2>&1"
