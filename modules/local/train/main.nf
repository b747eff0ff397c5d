process TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    tuple val(meta), path(sc), path(st), path(split)

    output:
    tuple val(meta), path("${meta.id}.model"), emit: model
    path "${meta.id}.training*_mqc.json", emit: mqc, optional: true
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    # torch uses as many threads as the task has CPUs, not as the node has cores
    export OMP_NUM_THREADS=${task.cpus}

    causalged-train \\
        --sample ${meta.id} \\
        --sc ${sc} \\
        --st ${st} \\
        --split ${split} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    """
    mkdir -p ${meta.id}.model
    touch ${meta.id}.model/config.json ${meta.id}.training_mqc.json ${meta.id}.training_pcc_mqc.json
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
