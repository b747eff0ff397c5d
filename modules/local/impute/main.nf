process IMPUTE {
    tag "${meta.id}"
    label 'process_gpu'

    input:
    tuple val(meta), path(model), path(sc), path(st), path(trust)

    output:
    tuple val(meta), path("${meta.id}.imputed.h5ad"), emit: h5ad
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def trust_arg = trust ? "--trust ${trust}" : ''
    """
    # torch uses as many threads as the task has CPUs, not as the node has cores
    export OMP_NUM_THREADS=${task.cpus}

    causalged-impute \\
        --sample ${meta.id} \\
        --model ${model} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${trust_arg} \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    """
    touch ${meta.id}.imputed.h5ad
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
