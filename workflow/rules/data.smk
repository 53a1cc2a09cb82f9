# Datasets: downloaded once into DATA_ROOT/qgvae-cache/<dataset>/ (train/val/test .npy and a
# manifest). A local rule, because downloads need the internet, which cluster nodes often lack.


rule prepare_data:
    output:
        manifest=f"{DATA_ROOT}/qgvae-cache/{{dataset}}/manifest.json",
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    localrule: True
    conda:
        ENV
    threads: RESOURCES["prepare_data"]["threads"]
    resources:
        **job_resources("prepare_data"),
    params:
        root=lambda wildcards, output: output.manifest.rsplit("/qgvae-cache/", 1)[0],
    shell:
        "qgvae prepare-data {wildcards.dataset:q} --root {params.root:q} --workers {threads}"
        " > {log:q} 2>&1"
