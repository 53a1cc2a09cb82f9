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
        "qgvae reconstruct {params.run_dir:q} {params.flags} > {log:q} 2>&1"


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


rule evaluate:
    input:
        recon=f"{RUN}/reconstructions.npz",
        analysis=f"{RUN}/analysis.npz",
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
        "qgvae evaluate {params.run_dir:q} {params.flags} > {log:q} 2>&1"
