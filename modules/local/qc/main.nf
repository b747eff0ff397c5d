process CAUSALGED_QC {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${prefix}.sc.qc.h5ad"), path("${prefix}.st.qc.h5ad"), emit: h5ad
    tuple val(meta), path("${prefix}.qc.json"), emit: json
    path "${prefix}.qc_mqc.tsv", emit: mqc
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    causalged-qc \\
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
    touch ${prefix}.sc.qc.h5ad ${prefix}.st.qc.h5ad ${prefix}.qc.json ${prefix}.qc_mqc.tsv
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
