# Reconstruction of the test split and the metrics of every run.


rule reconstruct:
    input:
        model=f"{RUN}/model.pt",
        data=ancient(run_manifest),
    output:
        recon=f"{RUN}/reconstructions.npz",
        analysis=f"{RUN}/analysis.npz",
    log:
        f"{RESULTS}/logs/reconstruct/{RUN_KEY}.log",
    benchmark:
        f"{RESULTS}/benchmarks/reconstruct/{RUN_KEY}.tsv"
    conda:
        ENV
    threads: RESOURCES["reconstruct"]["threads"]
    resources:
        **job_resources("reconstruct"),
    params:
        run_dir=lambda wildcards, output: os.path.dirname(output.recon),
        flags=reconstruct_args,
    shell:
        # params.flags: already shell-quoted word by word (shell_words in common.smk)
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae reconstruct {params.run_dir:q} {params.flags} > {log:q} 2>&1"


# LPIPS (AlexNet) and FID (Inception) weights go into the torch hub cache ($TORCH_HOME, default
# ~/.cache/torch) once, on the submitting machine: compute nodes often have no internet. Without
# internet, put them there first (`qgvae fetch-weights --torch-home DIR` where there is internet,
# then copy DIR and set TORCH_HOME=DIR); this rule then only checks them. The marker is ancient() below: refreshing
# the weights does not re-evaluate every run.
rule fetch_weights:
    output:
        marker=f"{RESULTS}/.metric_weights.done",
    log:
        f"{RESULTS}/logs/fetch_weights.log",
    localrule: True
    conda:
        ENV
    shell:
        "qgvae fetch-weights > {log:q} 2>&1 && touch {output.marker:q}"


# The floor of every table: the training split's mean image as the reconstruction of every test
# image, written as a run folder and scored by the same evaluator (tables and figures show it;
# every run's metrics.json records its PSNR gain over it).
FLOOR = f"{RESULTS}/{{dataset}}/floor/test{{n}}"


rule floor:
    input:
        data=ancient(run_manifest),
    output:
        recon=f"{FLOOR}/reconstructions.npz",
    log:
        f"{RESULTS}/logs/floor/{{dataset}}/test{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/floor/{{dataset}}/test{{n}}.tsv"
    conda:
        ENV
    threads: RESOURCES["reconstruct"]["threads"]
    resources:
        **job_resources("reconstruct"),
    params:
        root=DATA_ROOT,
        out=lambda wildcards, output: os.path.dirname(output.recon),
        flags=lambda wildcards: shell_words(
            [] if wildcards.n == "all" else ["--test-n", wildcards.n]
        ),
    shell:
        # params.flags: already shell-quoted word by word (shell_words in common.smk)
        "qgvae floor {wildcards.dataset:q} --root {params.root:q} --out {params.out:q}"
        " {params.flags} > {log:q} 2>&1"


if EVALUATE_TOGETHER:
    # One job per group of runs (common.smk: eval_groups); outputs are update()d in place, so
    # a rerun keeps the runs whose metrics.json is current (--skip-current).
    for _i, (_key, _runs) in enumerate(eval_groups()):

        rule:
            name:
                f"evaluate_together_{_i}"
            input:
                recon=run_files(_runs, "reconstructions.npz", "analysis.npz"),
                floor=f"{_key[1]}/reconstructions.npz",
                weights=ancient(rules.fetch_weights.output.marker),
            output:
                metrics=[update(f) for f in run_files(_runs, "metrics.json")],
                per_image=[update(f) for f in run_files(_runs, "metrics_per_image.csv")],
            log:
                f"{RESULTS}/logs/evaluate/together_{_key[0]}_{_i}.log",
            benchmark:
                f"{RESULTS}/benchmarks/evaluate/together_{_key[0]}_{_i}.tsv"
            conda:
                ENV
            threads: RESOURCES["evaluate"]["threads"]
            resources:
                **job_resources("evaluate"),
            params:
                runs=lambda wildcards, output: shell_words(map(os.path.dirname, output.metrics)),
                flags=group_eval_args(_key),
            shell:
                # params.runs, params.flags: already shell-quoted word by word (shell_words)
                "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
                " qgvae evaluate {params.runs} {params.flags} > {log:q} 2>&1"

else:

    rule evaluate:
        input:
            recon=f"{RUN}/reconstructions.npz",
            analysis=f"{RUN}/analysis.npz",
            floor=lambda wildcards: f"{run_floor(wildcards)}/reconstructions.npz",
            data=ancient(run_manifest),
            weights=ancient(rules.fetch_weights.output.marker),
        output:
            metrics=f"{RUN}/metrics.json",
            per_image=f"{RUN}/metrics_per_image.csv",
        log:
            f"{RESULTS}/logs/evaluate/{RUN_KEY}.log",
        benchmark:
            f"{RESULTS}/benchmarks/evaluate/{RUN_KEY}.tsv"
        conda:
            ENV
        threads: RESOURCES["evaluate"]["threads"]
        resources:
            **job_resources("evaluate"),
        params:
            run_dir=lambda wildcards, output: os.path.dirname(output.metrics),
            flags=evaluate_args,
        shell:
            # params.flags: already shell-quoted word by word (shell_words in common.smk)
            "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
            " qgvae evaluate {params.run_dir:q} {params.flags} > {log:q} 2>&1"


# The floor of every table, evaluated on its own (every target needs it; in a group it would tie
# that group to every target).
rule evaluate_floor:
    input:
        recon=f"{FLOOR}/reconstructions.npz",
        weights=ancient(rules.fetch_weights.output.marker),
    output:
        metrics=f"{FLOOR}/metrics.json",
    log:
        f"{RESULTS}/logs/evaluate/{{dataset}}/floor/test{{n}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{dataset}}/floor/test{{n}}.tsv"
    conda:
        ENV
    threads: RESOURCES["evaluate"]["threads"]
    resources:
        **job_resources("evaluate"),
    params:
        run_dir=lambda wildcards, output: os.path.dirname(output.metrics),
        flags=floor_eval_args,
    shell:
        # params.flags: already shell-quoted word by word (shell_words in common.smk)
        "QGVAE_RUNS_PER_GPU={resources.runs_per_gpu:q}"
        " qgvae evaluate {params.run_dir:q} {params.flags} > {log:q} 2>&1"
