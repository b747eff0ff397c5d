process CROSSVALIDATE {
    tag "${meta.id} fold ${meta.fold}"
    label 'process_gpu'

    input:
    tuple val(meta), path(sc), path(st), path(split)

    output:
    tuple val(meta), path("${meta.id}.fold${meta.fold}.predictions.h5ad"), emit: predictions
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    # torch uses as many threads as the task has CPUs, not as the node has cores
    export OMP_NUM_THREADS=${task.cpus}

    causalged-crossval \\
        --sample ${meta.id} \\
        --sc ${sc} \\
        --st ${st} \\
        --split ${split} \\
        --fold ${meta.fold} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    """
    touch ${meta.id}.fold${meta.fold}.predictions.h5ad
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
