process CAUSALGED_IMPUTE {
    tag "${meta.id}"
    label 'process_model'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(model), path(sc), path(st), path(trust)

    output:
    tuple val(meta), path("${prefix}.imputed.h5ad"), emit: h5ad
    tuple val(meta), path("${prefix}.imputed.zarr"), emit: zarr, optional: true
    path "${prefix}.*_mqc.tsv", emit: mqc, optional: true
    path "figures/${prefix}.*", emit: figures, optional: true
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // trust is an empty list when the evaluation branch did not run
    def trust_arg = trust ? "--trust ${trust}" : ''
    """
    # torch uses as many threads as the task has CPUs, not as the node has cores; after a CUDA
    # out-of-memory exit the retry samples with half the batch size
    export OMP_NUM_THREADS=${task.cpus}
    export CAUSALGED_BATCH_SCALE=${0.5 ** (task.attempt - 1)}

    causalged-impute \\
        --sample ${prefix} \\
        --model ${model} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${trust_arg} \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p figures
    mkdir -p ${prefix}.imputed.zarr
    touch ${prefix}.imputed.h5ad ${prefix}.simulated_truth_mqc.tsv figures/${prefix}.target_maps.png figures/${prefix}.target_maps_mqc.html
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
