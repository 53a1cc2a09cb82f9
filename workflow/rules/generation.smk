# The generation study (the paper's appendix H): for every tokenizer run and seed of the config's
# `generation` section, a prior folder <run>/prior/<digest>/ (qgvae.prior.plan):
#   prior_encode    the matched tokenizer weights -> codes_train.npz, codes_test.npz, tokenizer.json
#   prior_train     the autoregressive prior -> epochs/epochNNNN.pt, prior.pt (resumes)
#   prior_sample    samples at one sampled epoch -> samples_epochNNNN.npz
#   prior_evaluate  gFID against the test split and test NLL -> metrics_epochNNNN.json
# then the figures generation_fid and generation_samples and the generation table
# (reports/targets/generation/tables.tex; reports/tables.tex has it too).
# As for training, only the final prior.pt is declared: the checkpoint and the per-epoch
# weights survive a failed job, and rerunning it resumes.


wildcard_constraints:
    prior="[0-9a-f]+",
    epoch=r"\d+",
    gfigure=_alternatives(GENERATION_FIGURES),


rule prior_encode:
    input:
        model=f"{RUN}/model.pt",
        compare=prior_encode_inputs,
        data=ancient(run_manifest),
    output:
        train=f"{PRIOR}/codes_train.npz",
        test=f"{PRIOR}/codes_test.npz",
        tokenizer=f"{PRIOR}/tokenizer.json",
    log:
        f"{RESULTS}/logs/prior_encode/{PRIOR_KEY}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prior_encode/{PRIOR_KEY}.tsv"
    conda:
        ENV
    threads: RESOURCES["prior"]["threads"]
    resources:
        **job_resources("prior"),
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input.model),
        out=lambda wildcards, output: os.path.dirname(output.tokenizer),
        flags=prior_encode_args,
    shell:
        # params.flags: already shell-quoted word by word (shell_words in common.smk)
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae prior encode {params.run_dir:q} --out {params.out:q} {params.flags} > {log:q} 2>&1"


rule prior_train:
    input:
        train=f"{PRIOR}/codes_train.npz",
        test=f"{PRIOR}/codes_test.npz",
    output:
        model=f"{PRIOR}/prior.pt",
    log:
        f"{RESULTS}/logs/prior_train/{PRIOR_KEY}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prior_train/{PRIOR_KEY}.tsv"
    conda:
        ENV
    threads: RESOURCES["prior"]["threads"]
    resources:
        **job_resources("prior"),
    params:
        cfg=prior_train_json,
        folder=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        # appends: a resumed prior keeps the log of the attempts before it
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae prior train {params.folder:q} --config-json {params.cfg:q} >> {log:q} 2>&1"


rule prior_sample:
    input:
        model=f"{PRIOR}/prior.pt",
        tokenizer=f"{PRIOR}/tokenizer.json",
    output:
        samples=f"{PRIOR}/samples_epoch{{epoch}}.npz",
    log:
        f"{RESULTS}/logs/prior_sample/{PRIOR_KEY}/epoch{{epoch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prior_sample/{PRIOR_KEY}/epoch{{epoch}}.tsv"
    conda:
        ENV
    threads: RESOURCES["prior"]["threads"]
    resources:
        **job_resources("prior"),
    params:
        folder=lambda wildcards, input: os.path.dirname(input.model),
        epoch=lambda wildcards: int(wildcards.epoch),
        flags=prior_sample_args,
    shell:
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae prior sample {params.folder:q} --epoch {params.epoch} {params.flags} > {log:q} 2>&1"


rule prior_evaluate:
    input:
        samples=f"{PRIOR}/samples_epoch{{epoch}}.npz",
        test=f"{PRIOR}/codes_test.npz",
        data=ancient(run_manifest),
        weights=ancient(rules.fetch_weights.output.marker),
    output:
        metrics=f"{PRIOR}/metrics_epoch{{epoch}}.json",
    log:
        f"{RESULTS}/logs/prior_evaluate/{PRIOR_KEY}/epoch{{epoch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prior_evaluate/{PRIOR_KEY}/epoch{{epoch}}.tsv"
    conda:
        ENV
    threads: RESOURCES["evaluate"]["threads"]
    resources:
        **job_resources("evaluate"),
    params:
        folder=lambda wildcards, input: os.path.dirname(input.test),
        epoch=lambda wildcards: int(wildcards.epoch),
        flags=prior_evaluate_args,
    shell:
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae prior evaluate {params.folder:q} --epoch {params.epoch} {params.flags}"
        " > {log:q} 2>&1"


rule generation_figure:
    input:
        plan=plan_file(),
        paper=PAPER_VALUES,
        results=generation_figure_inputs,
    output:
        **figure_outputs("{gfigure}", "generation_figure.rst", "Generation"),
    log:
        f"{RESULTS}/logs/figures/{{gfigure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/figures/{{gfigure}}.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    params:
        name="{gfigure}",
        intervals="",  # FIGURE_CMD's bootstrap flag: only the rate-distortion figure has one
        summary="",  # gFID and samples: no numbers of the summary table
        outdir=lambda wildcards, output: os.path.dirname(output.pdf),
    shell:
        FIGURE_CMD


rule generation_table:
    input:
        plan=plan_file(),
        paper=PAPER_VALUES,
        metrics=generation_metrics(),
    output:
        tex=report(
            table_file("generation"),
            caption="../report/generation_table.rst",
            category="Tables",
            subcategory="generation",
            labels={"table": "generation"},
        ),
    log:
        f"{RESULTS}/logs/tables/generation.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/tables/generation.tsv"
    localrule: True
    conda:
        ENV
    threads: RESOURCES["summary"]["threads"]
    resources:
        **job_resources("summary"),
    shell:
        "qgvae prior table --plan {input.plan:q} --paper {input.paper:q} --out {output.tex:q}"
        " > {log:q} 2>&1"
