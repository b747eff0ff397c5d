process CAUSALGED_CROSSVALIDATE {
    tag "${meta.id} fold ${meta.fold}"
    label 'process_model'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st), path(split)

    output:
    tuple val(meta), path("${prefix}.fold${meta.fold}.predictions.h5ad"), emit: predictions
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    # torch uses as many threads as the task has CPUs, not as the node has cores; after a CUDA
    # out-of-memory exit the retry trains and samples with half the batch size
    export OMP_NUM_THREADS=${task.cpus}
    export CAUSALGED_BATCH_SCALE=${0.5 ** (task.attempt - 1)}

    causalged-crossval \\
        --sample ${prefix} \\
        --sc ${sc} \\
        --st ${st} \\
        --split ${split} \\
        --fold ${meta.fold} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.fold${meta.fold}.predictions.h5ad
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
