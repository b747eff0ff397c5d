process CAUSALGED_TRAIN {
    tag "${meta.id}"
    label 'process_model'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st), path(split)

    output:
    tuple val(meta), path("${prefix}.model"), emit: model
    path "${prefix}.training*_mqc.json", emit: mqc, optional: true
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    # torch uses as many threads as the task has CPUs, not as the node has cores; after a CUDA
    # out-of-memory exit the retry trains with half the batch size
    export OMP_NUM_THREADS=${task.cpus}
    export CAUSALGED_BATCH_SCALE=${0.5 ** (task.attempt - 1)}

    causalged-train \\
        --sample ${prefix} \\
        --sc ${sc} \\
        --st ${st} \\
        --split ${split} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p ${prefix}.model
    touch ${prefix}.model/config.json ${prefix}.training_mqc.json ${prefix}.training_pcc_mqc.json
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
