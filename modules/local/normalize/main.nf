process NORMALIZE {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${meta.id}.sc.norm.h5ad"), path("${meta.id}.st.norm.h5ad"), emit: h5ad
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    causalged-normalize \\
        --sample ${meta.id} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    """
    touch ${meta.id}.sc.norm.h5ad ${meta.id}.st.norm.h5ad
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
