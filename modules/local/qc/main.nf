process QC {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${meta.id}.sc.qc.h5ad"), path("${meta.id}.st.qc.h5ad"), emit: h5ad
    tuple val(meta), path("${meta.id}.qc.json"), emit: json
    path "${meta.id}.qc_mqc.tsv", emit: mqc
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    causalged-qc \\
        --sample ${meta.id} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    """
    touch ${meta.id}.sc.qc.h5ad ${meta.id}.st.qc.h5ad ${meta.id}.qc.json ${meta.id}.qc_mqc.tsv
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
