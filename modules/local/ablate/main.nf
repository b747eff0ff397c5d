process CAUSALGED_ABLATE {
    tag "${meta.id}"
    label 'process_model'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${prefix}.ablations.md"), emit: page
    tuple val(meta), path("${prefix}.ablations.csv"), emit: csv
    path "figures/${prefix}.ablations_*.png", emit: figures
    path "mqc/${prefix}.ablations*_mqc.*", emit: mqc
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    # torch threads from the task's CPUs; after a CUDA out-of-memory exit the retry trains with half the batch
    export OMP_NUM_THREADS=${task.cpus}
    export CAUSALGED_BATCH_SCALE=${0.5 ** (task.attempt - 1)}

    # the ablation reads a dataset folder (raw-count sc.h5ad + st.h5ad) named after the sample
    mkdir -p ${prefix}
    ln -sf ../${sc} ${prefix}/sc.h5ad
    ln -sf ../${st} ${prefix}/st.h5ad

    causalged-ablate \\
        ${prefix} \\
        --output ${prefix}.ablations.md \\
        --mqc-dir mqc \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p figures mqc
    touch ${prefix}.ablations.md ${prefix}.ablations.csv figures/${prefix}.ablations_mask.png
    touch mqc/${prefix}.ablations_mqc.tsv mqc/${prefix}.ablations_mask_mqc.html
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
