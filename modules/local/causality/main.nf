process CAUSALGED_CAUSALITY {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st)

    output:
    tuple val(meta), path("${prefix}.causality.csv"), emit: csv
    tuple val(meta), path("${prefix}.causality.json"), emit: json
    path "${prefix}.causality.top_pairs_mqc.tsv", emit: mqc
    path "${prefix}.causality_*", emit: figures
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    causalged-causality \\
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
    touch ${prefix}.causality.csv ${prefix}.causality.json ${prefix}.causality.top_pairs_mqc.tsv
    touch ${prefix}.causality_heatmap.png ${prefix}.causality_heatmap_mqc.html ${prefix}.causality_network.png ${prefix}.causality_network_mqc.html
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
