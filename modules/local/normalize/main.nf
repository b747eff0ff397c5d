process CAUSALGED_NORMALIZE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${prefix}.sc.norm.h5ad"), path("${prefix}.st.norm.h5ad"), emit: h5ad
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    causalged-normalize \\
        --sample ${prefix} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.sc.norm.h5ad ${prefix}.st.norm.h5ad
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
