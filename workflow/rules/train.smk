# Training: one job per run folder of the plan.
#
# `qgvae train` writes run.json, config.yaml, train_log.jsonl and checkpoint.pt while it works and
# model.pt atomically last, and resumes from checkpoint.pt. Only model.pt is declared: Snakemake
# deletes the declared outputs of a failed job, and the checkpoint must survive for resumption
# (after a crash, a kill or a SLURM time limit, rerunning the job continues where it stopped).
#
# params.cfg is the run's resolved config (without `eval`, which reaches reconstruct/evaluate as
# flags): with the `params` rerun trigger (workflow profile), a run retrains exactly when its
# configuration changes. A change to what is trained also changes the variant folder (build_plan's
# digest), so it starts a new run beside the old one; the trigger then catches the rest (e.g. the
# data root or the checkpoint cadence).


rule train:
    input:
        data=ancient(run_manifest),
        # DQ-VAE's training loss has an LPIPS term: the metric weights come before any training
        weights=ancient(f"{RESULTS}/.metric_weights.done"),
    output:
        model=f"{RUN}/model.pt",
    log:
        f"{RESULTS}/logs/train/{RUN_KEY}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{RUN_KEY}.tsv"
    # trainings first: the evaluation groups wait for all of a dataset's runs, so a training
    # left for last (behind the generation study's jobs) would leave a core idle at the end
    priority: 10
    conda:
        ENV
    threads: RESOURCES["train"]["threads"]
    resources:
        **job_resources("train"),
    params:
        cfg=train_config_json,
        run_dir=lambda wildcards, output: os.path.dirname(output.model),
    shell:
        # Appends: a resumed run keeps the log of the attempts before it. QGVAE_RUNS_PER_GPU: how
        # many runs share one GPU, for the GPU slot `qgvae train` takes (qgvae.gpu_slots).
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae train --config-json {params.cfg:q} --out {params.run_dir:q} >> {log:q} 2>&1"
